//! A `phxq serve` child process for integration tests: free port, fresh temp data
//! dir, killed on drop. If the test is panicking, the broker's stderr tail is printed.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The broker binary: $PHXQ_BIN, else <repo>/target/release/phxq.
pub fn phxq_bin() -> PathBuf {
    match std::env::var_os("PHXQ_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/phxq"),
    }
}

pub struct Broker {
    pub port: u16,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl Broker {
    pub fn start(args: &[&str]) -> Broker {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::Builder::new()
            .prefix("phxq-rs-test-")
            .tempdir()
            .expect("tempdir");
        let log = dir.path().join("broker.stderr.log");
        let mut b = Broker {
            port,
            args: args.iter().map(|s| s.to_string()).collect(),
            child: None,
            log,
            dir,
        };
        b.spawn();
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self) {
        let bin = phxq_bin();
        assert!(
            bin.exists(),
            "phxq binary not found at {} (build it, or set PHXQ_BIN)",
            bin.display()
        );
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        writeln!(
            log,
            "===== start: {} serve --listen {} ...",
            bin.display(),
            self.bootstrap()
        )
        .unwrap();
        let err: File = log.try_clone().unwrap();
        let child = Command::new(&bin)
            .arg("serve")
            .arg("--listen")
            .arg(self.bootstrap())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn phxq");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "phxq exited during startup with {status}:\n{}",
                    self.log_tail(60)
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "phxq did not accept within 30s:\n{}",
                self.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (a crash) and wait for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Panics if the broker process has exited on its own.
    pub fn assert_alive(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Some(status) = c.try_wait().unwrap() {
                panic!("phxq died with {status}:\n{}", self.log_tail(60));
            }
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let died = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        self.kill9();
        if std::thread::panicking() || died.is_some() {
            eprintln!(
                "----- phxq stderr (last 60 lines) -----\n{}\n-----",
                self.log_tail(60)
            );
        }
        if let Some(status) = died {
            if !std::thread::panicking() {
                panic!("phxq exited on its own during the test with {status}");
            }
        }
    }
}
