//! The `quarry` binary as an operator meets it: clean shutdown on SIGTERM, and clear messages for
//! bad configuration and a port that is taken.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quarry_shared::testing::TestDb;

fn quarry() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
    cmd.env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_health(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::Write;
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                s,
                "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out.starts_with("HTTP/1.1 200")
        });
        if ok {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[tokio::test]
async fn dev_serves_and_stops_cleanly_on_sigterm() {
    let db = TestDb::from_template().await;
    let port = free_port();
    let mut child = quarry()
        .arg("dev")
        .env("DATABASE_URL", &db.url)
        .env("PORT", port.to_string())
        .spawn()
        .unwrap();
    assert!(
        wait_for_health(port),
        "quarry dev did not become healthy on port {port}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "quarry dev did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn bad_configuration_names_the_variable() {
    let output = quarry()
        .arg("dev")
        .env("PORT", "eighty")
        .env("DATABASE_URL", "postgres://u@127.0.0.1/x")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PORT"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let output = quarry()
        .arg("dev")
        .env_remove("DATABASE_URL")
        .env("PORT", "0")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL"));

    let output = quarry()
        .arg("migrate")
        .env(
            "DATABASE_URL",
            "postgres://quarry:s3cret-pw@127.0.0.1:1/quarry",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("s3cret-pw"),
        "the password leaked: {stderr}"
    );
}

#[test]
fn a_taken_port_is_reported_with_the_variable_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut child = quarry()
        .arg("dev")
        .env("PORT", port.to_string())
        .env("DATABASE_URL", "postgres://u@127.0.0.1:1/x")
        .env("APP_DATABASE_URL", "postgres://quarry_app:x@127.0.0.1:1/x")
        .env("JWT_SECRET", quarry_shared::testing::TEST_JWT_SECRET)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "quarry dev hung on a taken port");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!exit.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains(&port.to_string()) && stderr.contains("PORT"),
        "{stderr}"
    );
}

#[tokio::test]
async fn token_mints_a_token_the_functions_accept() {
    let output = quarry()
        .args([
            "token", "--sub", "alice", "--role", "finance", "--region", "emea", "--ttl", "15m",
        ])
        .env("JWT_SECRET", quarry_shared::testing::TEST_JWT_SECRET)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "only the token is printed");
    assert_eq!(token.split('.').count(), 3);

    let db = TestDb::from_template().await;
    let app = quarry_shared::testing::spawn_app(
        quarry_shared::testing::settings_for(&db, &[]),
        quarry_cli::services(),
    )
    .await;
    let me: serde_json::Value = reqwest::Client::new()
        .get(app.url("/v1/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["role"], "finance");
    let ttl = me["exp"].as_i64().unwrap() - quarry_shared::testing::now();
    assert!((890..=900).contains(&ttl), "{ttl}");
}

#[test]
fn token_refuses_bad_input_clearly() {
    let bad_ttl = quarry()
        .args([
            "token", "--sub", "a", "--role", "admin", "--region", "emea", "--ttl", "forever",
        ])
        .env("JWT_SECRET", quarry_shared::testing::TEST_JWT_SECRET)
        .output()
        .unwrap();
    assert!(!bad_ttl.status.success());
    assert!(String::from_utf8_lossy(&bad_ttl.stderr).contains("forever"));
    let no_secret = quarry()
        .args(["token", "--sub", "a", "--role", "admin", "--region", "emea"])
        .env_remove("JWT_SECRET")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(!no_secret.status.success());
    assert!(String::from_utf8_lossy(&no_secret.stderr).contains("JWT_SECRET"));
    assert!(no_secret.stdout.is_empty());
}

#[tokio::test]
async fn advise_reports_on_the_workload() {
    let db = TestDb::from_template().await;
    // A workload: the same unindexed lookup, three times, as the owner.
    let client = db.connect().await;
    for tailnum in ["N14228", "N24211", "N619AA"] {
        client
            .query(
                "SELECT flight_id FROM flights.flights WHERE tailnum = $1",
                &[&tailnum],
            )
            .await
            .unwrap();
    }
    let output = quarry()
        .args(["advise", "--min-calls", "2"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("qa_flights_tailnum"), "{stdout}");
    let bad = quarry()
        .args(["advise", "--top", "0"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
