//! The demo governance policy, seeded with the demo data:
//!
//! | role | may read | regions |
//! |---|---|---|
//! | `admin` | every table in `public` and `flights` | all |
//! | `analyst` | customer, invoice, invoice_line, track, album, artist, genre, media_type | own region only (rows) |
//! | `finance` | invoice, invoice_line, customer without email, phone, fax, address | own region only (rows) |
//! | `catalog` | track, album, artist, genre, media_type, playlist, playlist_track | all |
//!
//! Re-seeding replaces these four roles' grants and leaves any other role alone.

use tokio_postgres::Client;

use super::DemoError;

const SEED: &str = "
INSERT INTO quarry_meta.roles (name, description, row_scope) VALUES
    ('admin', 'Administrators: every table, every region.', 'all'),
    ('analyst', 'Sales analysts: sales and catalog tables, rows of their own region.', 'own_region'),
    ('finance', 'Finance: invoices and customers without contact details, rows of their own region.', 'own_region'),
    ('catalog', 'Catalog managers: the music catalog and playlists, every region.', 'all')
ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, row_scope = EXCLUDED.row_scope;

DELETE FROM quarry_meta.role_tables WHERE role IN ('admin', 'analyst', 'finance', 'catalog');
DELETE FROM quarry_meta.role_regions WHERE role IN ('admin', 'analyst', 'finance', 'catalog');

INSERT INTO quarry_meta.role_tables (role, schema_name, table_name, columns) VALUES
    ('admin', 'public', '*', NULL),
    ('admin', 'flights', '*', NULL),
    ('analyst', 'public', 'customer', NULL),
    ('analyst', 'public', 'invoice', NULL),
    ('analyst', 'public', 'invoice_line', NULL),
    ('analyst', 'public', 'track', NULL),
    ('analyst', 'public', 'album', NULL),
    ('analyst', 'public', 'artist', NULL),
    ('analyst', 'public', 'genre', NULL),
    ('analyst', 'public', 'media_type', NULL),
    ('finance', 'public', 'invoice', NULL),
    ('finance', 'public', 'invoice_line', NULL),
    ('finance', 'public', 'customer', ARRAY['customer_id', 'first_name', 'last_name', 'company', 'city', 'state',
                                            'country', 'postal_code', 'support_rep_id', 'region']),
    ('catalog', 'public', 'track', NULL),
    ('catalog', 'public', 'album', NULL),
    ('catalog', 'public', 'artist', NULL),
    ('catalog', 'public', 'genre', NULL),
    ('catalog', 'public', 'media_type', NULL),
    ('catalog', 'public', 'playlist', NULL),
    ('catalog', 'public', 'playlist_track', NULL);

INSERT INTO quarry_meta.role_regions (role, region) VALUES
    ('admin', '*'),
    ('analyst', 'americas'), ('analyst', 'apac'), ('analyst', 'emea'),
    ('finance', 'americas'), ('finance', 'apac'), ('finance', 'emea'),
    ('catalog', '*');
";

/// Seeds (or re-seeds) the demo roles in one transaction.
pub(super) async fn seed(client: &mut Client) -> Result<(), DemoError> {
    let tx = client.transaction().await?;
    tx.batch_execute(SEED)
        .await
        .map_err(|e| super::load_error("the demo policy (run `quarry migrate` first)", &e))?;
    tx.commit().await?;
    Ok(())
}
