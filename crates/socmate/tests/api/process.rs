//! The one process harness: the real `socmate` binary with a data dir, the emulator's endpoints
//! and extra environment, as a server (started, killed, terminated) or as a one-off command.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use azure_emulator::RunningEmulator;

use crate::helpers::JWT_SECRET;

const BIN: &str = env!("CARGO_BIN_EXE_socmate");

pub struct Server {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn command(
    data_dir: &Path,
    emulator: Option<&RunningEmulator>,
    envs: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SOCMATE_DATA_DIR", data_dir)
        .env("SOCMATE_JWT_SECRET", JWT_SECRET)
        // Background health checks only where a test asks for them (they call the emulator).
        .env("SOCMATE_HEALTH_INTERVAL", "0");
    if let Some(emulator) = emulator {
        for name in [
            "SOCMATE_AZURE_AUTHORITY_HOST",
            "SOCMATE_AZURE_LOG_ANALYTICS_ENDPOINT",
            "SOCMATE_AZURE_GRAPH_ENDPOINT",
        ] {
            cmd.env(name, emulator.url());
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

impl Server {
    pub fn spawn(
        data_dir: &Path,
        emulator: Option<&RunningEmulator>,
        envs: &[(&str, &str)],
        log_name: &str,
    ) -> (Child, String, PathBuf) {
        let port = free_port();
        let log = data_dir.parent().unwrap().join(log_name);
        let child = command(data_dir, emulator, envs)
            .arg("serve")
            .env("SOCMATE_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (child, format!("http://127.0.0.1:{port}"), log)
    }

    pub async fn start(
        data_dir: &Path,
        emulator: Option<&RunningEmulator>,
        envs: &[(&str, &str)],
        log_name: &str,
    ) -> Server {
        let (mut child, base, log) = Self::spawn(data_dir, emulator, envs, log_name);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
                && r.status().is_success()
            {
                return Server { child, base, log };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "socmate exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "socmate did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown code runs at all.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status (graceful shutdown must finish promptly).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "socmate ignored SIGTERM: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn issue_token(data_dir: &Path, role: &str) -> String {
    let out = command(data_dir, None, &[])
        .args([
            "token",
            "issue",
            "--email",
            "cli-admin@example.com",
            "--role",
            role,
            "--ttl",
            "10m",
        ])
        .output()
        .unwrap();
    crate::process::assert_succeeded(&out);
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Asserts that a CLI command exited successfully, showing its stderr when it did not.
pub fn assert_succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `command` with `stdin` as its input (e.g. a password for `socmate user add`).
pub fn with_stdin(command: &mut Command, stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{stdin}").unwrap();
    child.wait_with_output().unwrap()
}
