-- The Chinook demo database (a digital music store), snake_case, with the fixture's primary keys.
-- Foreign keys and comments on every table and column: the comments feed the LLM's schema context.

-- Region of a country, as the governance rules use it. IMMUTABLE so it can be used in defaults,
-- checks and indexes.
CREATE FUNCTION quarry_meta.region_for_country(country text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN country IN ('USA', 'Canada', 'Brazil', 'Argentina', 'Chile') THEN 'americas'
    WHEN country IN ('India', 'Australia') THEN 'apac'
    WHEN country IS NULL THEN NULL
    ELSE 'emea'
END;
COMMENT ON FUNCTION quarry_meta.region_for_country(text) IS 'Sales region of a country: americas, apac or emea.';

CREATE TABLE artist (
    artist_id integer PRIMARY KEY,
    name text
);
COMMENT ON TABLE artist IS 'Recording artists and bands.';
COMMENT ON COLUMN artist.artist_id IS 'Artist identifier.';
COMMENT ON COLUMN artist.name IS 'Name of the artist or band.';

CREATE TABLE album (
    album_id integer PRIMARY KEY,
    title text NOT NULL,
    artist_id integer NOT NULL REFERENCES artist (artist_id)
);
COMMENT ON TABLE album IS 'Albums; each belongs to one artist.';
COMMENT ON COLUMN album.album_id IS 'Album identifier.';
COMMENT ON COLUMN album.title IS 'Album title.';
COMMENT ON COLUMN album.artist_id IS 'The album''s artist (artist.artist_id).';

CREATE TABLE genre (
    genre_id integer PRIMARY KEY,
    name text
);
COMMENT ON TABLE genre IS 'Music genres such as Rock, Jazz or Metal.';
COMMENT ON COLUMN genre.genre_id IS 'Genre identifier.';
COMMENT ON COLUMN genre.name IS 'Genre name, e.g. Rock, Jazz, Blues.';

CREATE TABLE media_type (
    media_type_id integer PRIMARY KEY,
    name text
);
COMMENT ON TABLE media_type IS 'File formats tracks are sold in.';
COMMENT ON COLUMN media_type.media_type_id IS 'Media type identifier.';
COMMENT ON COLUMN media_type.name IS 'Format name, e.g. MPEG audio file, AAC audio file.';

CREATE TABLE track (
    track_id integer PRIMARY KEY,
    name text NOT NULL,
    album_id integer REFERENCES album (album_id),
    media_type_id integer NOT NULL REFERENCES media_type (media_type_id),
    genre_id integer REFERENCES genre (genre_id),
    composer text,
    milliseconds integer NOT NULL,
    bytes integer,
    unit_price numeric(10, 2) NOT NULL
);
COMMENT ON TABLE track IS 'Tracks (songs and videos) for sale.';
COMMENT ON COLUMN track.track_id IS 'Track identifier.';
COMMENT ON COLUMN track.name IS 'Track title.';
COMMENT ON COLUMN track.album_id IS 'The album the track is on (album.album_id).';
COMMENT ON COLUMN track.media_type_id IS 'The file format (media_type.media_type_id).';
COMMENT ON COLUMN track.genre_id IS 'The genre (genre.genre_id).';
COMMENT ON COLUMN track.composer IS 'Composer(s), comma-separated; may be empty.';
COMMENT ON COLUMN track.milliseconds IS 'Duration in milliseconds.';
COMMENT ON COLUMN track.bytes IS 'File size in bytes.';
COMMENT ON COLUMN track.unit_price IS 'List price of one unit in USD.';

CREATE TABLE playlist (
    playlist_id integer PRIMARY KEY,
    name text
);
COMMENT ON TABLE playlist IS 'Curated playlists.';
COMMENT ON COLUMN playlist.playlist_id IS 'Playlist identifier.';
COMMENT ON COLUMN playlist.name IS 'Playlist name.';

CREATE TABLE playlist_track (
    playlist_id integer NOT NULL REFERENCES playlist (playlist_id),
    track_id integer NOT NULL REFERENCES track (track_id),
    PRIMARY KEY (playlist_id, track_id)
);
COMMENT ON TABLE playlist_track IS 'Which tracks are on which playlists.';
COMMENT ON COLUMN playlist_track.playlist_id IS 'The playlist (playlist.playlist_id).';
COMMENT ON COLUMN playlist_track.track_id IS 'The track (track.track_id).';

CREATE TABLE employee (
    employee_id integer PRIMARY KEY,
    last_name text NOT NULL,
    first_name text NOT NULL,
    title text,
    reports_to integer REFERENCES employee (employee_id),
    birth_date date,
    hire_date date,
    address text,
    city text,
    state text,
    country text,
    postal_code text,
    phone text,
    fax text,
    email text
);
COMMENT ON TABLE employee IS 'Staff of the store, including the sales support agents assigned to customers.';
COMMENT ON COLUMN employee.employee_id IS 'Employee identifier.';
COMMENT ON COLUMN employee.last_name IS 'Family name.';
COMMENT ON COLUMN employee.first_name IS 'Given name.';
COMMENT ON COLUMN employee.title IS 'Job title, e.g. Sales Support Agent.';
COMMENT ON COLUMN employee.reports_to IS 'The employee''s manager (employee.employee_id).';
COMMENT ON COLUMN employee.birth_date IS 'Date of birth.';
COMMENT ON COLUMN employee.hire_date IS 'Date the employee was hired.';
COMMENT ON COLUMN employee.address IS 'Street address.';
COMMENT ON COLUMN employee.city IS 'City.';
COMMENT ON COLUMN employee.state IS 'State or province.';
COMMENT ON COLUMN employee.country IS 'Country.';
COMMENT ON COLUMN employee.postal_code IS 'Postal code.';
COMMENT ON COLUMN employee.phone IS 'Phone number.';
COMMENT ON COLUMN employee.fax IS 'Fax number.';
COMMENT ON COLUMN employee.email IS 'Work email address.';

CREATE TABLE customer (
    customer_id integer PRIMARY KEY,
    first_name text NOT NULL,
    last_name text NOT NULL,
    company text,
    address text,
    city text,
    state text,
    country text,
    postal_code text,
    phone text,
    fax text,
    email text NOT NULL,
    support_rep_id integer REFERENCES employee (employee_id),
    region text NOT NULL CHECK (region IN ('americas', 'apac', 'emea'))
);
COMMENT ON TABLE customer IS 'Customers of the store.';
COMMENT ON COLUMN customer.customer_id IS 'Customer identifier.';
COMMENT ON COLUMN customer.first_name IS 'Given name.';
COMMENT ON COLUMN customer.last_name IS 'Family name.';
COMMENT ON COLUMN customer.company IS 'Company the customer works for, if any.';
COMMENT ON COLUMN customer.address IS 'Street address (personal data).';
COMMENT ON COLUMN customer.city IS 'City.';
COMMENT ON COLUMN customer.state IS 'State or province.';
COMMENT ON COLUMN customer.country IS 'Country, e.g. USA, Germany, Brazil.';
COMMENT ON COLUMN customer.postal_code IS 'Postal code.';
COMMENT ON COLUMN customer.phone IS 'Phone number (personal data).';
COMMENT ON COLUMN customer.fax IS 'Fax number (personal data).';
COMMENT ON COLUMN customer.email IS 'Email address (personal data).';
COMMENT ON COLUMN customer.support_rep_id IS 'The customer''s sales support agent (employee.employee_id).';
COMMENT ON COLUMN customer.region IS 'Sales region derived from the country: americas, apac or emea.';

CREATE TABLE invoice (
    invoice_id integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customer (customer_id),
    invoice_date timestamp NOT NULL,
    billing_address text,
    billing_city text,
    billing_state text,
    billing_country text,
    billing_postal_code text,
    total numeric(10, 2) NOT NULL,
    region text NOT NULL CHECK (region IN ('americas', 'apac', 'emea'))
);
COMMENT ON TABLE invoice IS 'Invoices: one purchase by one customer, with its billing address and total.';
COMMENT ON COLUMN invoice.invoice_id IS 'Invoice identifier.';
COMMENT ON COLUMN invoice.customer_id IS 'The buying customer (customer.customer_id).';
COMMENT ON COLUMN invoice.invoice_date IS 'Date and time of the purchase (2007-2011).';
COMMENT ON COLUMN invoice.billing_address IS 'Billing street address.';
COMMENT ON COLUMN invoice.billing_city IS 'Billing city.';
COMMENT ON COLUMN invoice.billing_state IS 'Billing state or province.';
COMMENT ON COLUMN invoice.billing_country IS 'Billing country.';
COMMENT ON COLUMN invoice.billing_postal_code IS 'Billing postal code.';
COMMENT ON COLUMN invoice.total IS 'Invoice total in USD (sum of its lines).';
COMMENT ON COLUMN invoice.region IS 'Sales region derived from the billing country: americas, apac or emea.';

CREATE TABLE invoice_line (
    invoice_line_id integer PRIMARY KEY,
    invoice_id integer NOT NULL REFERENCES invoice (invoice_id),
    track_id integer NOT NULL REFERENCES track (track_id),
    unit_price numeric(10, 2) NOT NULL,
    quantity integer NOT NULL
);
COMMENT ON TABLE invoice_line IS 'Invoice lines: one track bought on one invoice.';
COMMENT ON COLUMN invoice_line.invoice_line_id IS 'Invoice line identifier.';
COMMENT ON COLUMN invoice_line.invoice_id IS 'The invoice (invoice.invoice_id).';
COMMENT ON COLUMN invoice_line.track_id IS 'The track bought (track.track_id).';
COMMENT ON COLUMN invoice_line.unit_price IS 'Price paid per unit in USD.';
COMMENT ON COLUMN invoice_line.quantity IS 'Number of units bought.';
