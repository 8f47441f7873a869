//! Running poppler and Tesseract: one subprocess at a time, killed when its time is up.
//!
//! Standard output and error go to files in the document's temporary directory rather than
//! pipes, so a tool that writes a lot can never block on a full pipe while we wait for it, and
//! no reader thread is needed. The wait is a `try_wait` poll (1 ms rising to 25 ms), not the
//! `wait-timeout` crate: that installs a process-wide SIGCHLD handler next to the one Tokio uses
//! to reap its own children, and a poll costs nothing next to a PDF tool's run time.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::ExtractError;

/// How a run ended short of an exit status.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The program is not installed.
    Missing(&'static str),
    /// It ran past its timeout and was killed.
    TimedOut,
    /// Spawning or waiting failed.
    Io(io::Error),
}

impl From<io::Error> for RunError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

impl RunError {
    /// The error for everything but a timeout, whose meaning depends on the caller.
    pub(crate) fn into_extract_error(self, on_timeout: ExtractError) -> ExtractError {
        match self {
            Self::Missing(tool) => ExtractError::ToolMissing { tool },
            Self::TimedOut => on_timeout,
            Self::Io(err) => ExtractError::Io(err),
        }
    }
}

/// A finished run.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    /// Where standard output went.
    pub(crate) stdout: PathBuf,
    /// The first few KiB of standard error, for classifying failures (never shown to users).
    pub(crate) stderr: String,
}

/// Standard error kept for classification.
const STDERR_KEEP: u64 = 8 * 1024;

/// Runs `program` with `args` in `dir`, with stdin closed and stdout and stderr in files in
/// `dir` named after the program, killing it after `timeout`.
///
/// `OMP_THREAD_LIMIT=1` keeps Tesseract to one thread: its OpenMP threads help one document a
/// little but thrash when several OCR jobs run at once, and callers bound concurrency instead.
pub(crate) fn run(
    program: &'static str,
    args: &[&OsStr],
    dir: &Path,
    timeout: Duration,
) -> Result<Finished, RunError> {
    let stdout = dir.join(format!("{program}.out"));
    let stderr = dir.join(format!("{program}.err"));
    let spawned = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout)?)
        .stderr(File::create(&stderr)?)
        .env("OMP_THREAD_LIMIT", "1")
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(RunError::Missing(program))
        }
        Err(err) => return Err(err.into()),
    };
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            // kill() fails only if the child already exited; wait() then reaps it either way.
            let _ = child.kill();
            child.wait()?;
            return Err(RunError::TimedOut);
        }
        thread::sleep(pause.min(timeout - elapsed));
        pause = (pause * 2).min(Duration::from_millis(25));
    };
    let mut err_bytes = Vec::new();
    File::open(&stderr)?
        .take(STDERR_KEEP)
        .read_to_end(&mut err_bytes)?;
    Ok(Finished {
        status,
        stdout,
        stderr: String::from_utf8_lossy(&err_bytes).into_owned(),
    })
}

/// Reads a tool's text output, at most `limit` bytes; invalid UTF-8 is replaced, not fatal.
///
/// # Errors
/// [`ExtractError::TooLarge`] over the limit.
pub(crate) fn read_text(path: &Path, limit: u64) -> Result<String, ExtractError> {
    let mut bytes = Vec::new();
    File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ExtractError::TooLarge {
            what: "the extracted text",
            limit,
        });
    }
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_program_is_killed_and_a_missing_one_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let start = Instant::now();
        let err = run(
            "sleep",
            &[OsStr::new("5")],
            dir.path(),
            Duration::from_millis(50),
        )
        .expect_err("times out");
        assert!(matches!(err, RunError::TimedOut), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(2));

        let err = run(
            "quarry-no-such-tool",
            &[],
            dir.path(),
            Duration::from_secs(1),
        )
        .expect_err("missing");
        assert!(matches!(err, RunError::Missing("quarry-no-such-tool")));

        let done = run(
            "echo",
            &[OsStr::new("hi")],
            dir.path(),
            Duration::from_secs(5),
        )
        .expect("echo runs");
        assert!(done.status.success());
        assert_eq!(read_text(&done.stdout, 100).expect("read"), "hi\n");
        assert!(matches!(
            read_text(&done.stdout, 2),
            Err(ExtractError::TooLarge { .. })
        ));
    }
}
