//! Library side of the `quarry` command: the list of every function, shared by `quarry dev` and
//! the tests that run the same router, and the evaluation metrics of `quarry eval`.
#![warn(missing_docs)]

pub mod metrics;

use quarry_shared::service::Service;

/// Every function of Quarry, in the order the README lists them.
pub fn services() -> Vec<Service> {
    vec![
        quarry_auth::service(),
        quarry_ask::service(),
        quarry_sql_exec::service(),
        quarry_retrieve::service(),
        quarry_ingest::service(),
        quarry_index_advisor::service(),
    ]
}
