//! moto in server mode, one per test: a real AWS emulator on a free loopback
//! port, installed into the project's `.venv` by `scripts/venv.sh`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
/// The secret access key the function processes get: distinctive, so that
/// a test can prove it never reaches a log line or a report.
pub const SECRET_ACCESS_KEY: &str = "ballast-test-secret-do-not-log-0123456789";

pub struct Moto {
    child: Child,
    pub port: u16,
}

/// A program of the project's `.venv` (moto's, with boto3 beside it).
pub fn venv_program(name: &str) -> PathBuf {
    let venv = std::env::var_os("BALLAST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".venv"));
    venv.join("bin").join(name)
}

fn moto_server() -> PathBuf {
    let bin = venv_program("moto_server");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/venv.sh (make test and make demo do)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Moto {
    /// Starts a fresh emulator and waits until it answers.
    pub fn start() -> Moto {
        let bin = moto_server();
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // lost the port race: try another port
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Moto { child, port };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SDK configuration pointing every client at this emulator.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .http_client(ballast::aws::http_client())
            .credentials_provider(aws_sdk_sns::config::SharedCredentialsProvider::new(
                aws_sdk_sns::config::Credentials::new("testing", "testing", None, None, "moto"),
            ))
            .build()
    }

    /// The environment a function process needs to talk to this emulator.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
