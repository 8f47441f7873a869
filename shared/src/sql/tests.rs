//! Unit tests of the SQL guard.
