//! The TLS-only, ACL-protected Redis of `scripts/redis-tls.sh`, as managed services run it:
//! `REDIS_TLS_URL` and `REDIS_TLS_CA_FILE` (set by `scripts/redis-env.sh`), or a server this
//! process starts once for itself. Never skipped: without `redis-server`, `redis-cli` or
//! `openssl` the tests fail and say so.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::OnceLock,
};

use crate::redis_server::{HOW_TO_GET_REDIS, scratch_dir, watchdog, workspace_root};

/// Where the TLS Redis is and what to trust.
#[derive(Debug, Clone)]
pub struct TlsRedis {
    /// `rediss://portcullis:<password>@127.0.0.1:<port>`: the ACL user, which may touch only
    /// keys under the `pct-` test prefixes and no `@dangerous` command.
    pub url: String,
    /// The PEM file of the CA that signed the server's certificate.
    pub ca_file: PathBuf,
}

impl TlsRedis {
    /// The same server with other credentials (`user:password`, or `""` for none).
    pub fn url_with_credentials(&self, credentials: &str) -> String {
        let (_, host) = self
            .url
            .rsplit_once('@')
            .unwrap_or_else(|| panic!("REDIS_TLS_URL carries no credentials"));
        if credentials.is_empty() {
            format!("rediss://{host}")
        } else {
            format!("rediss://{credentials}@{host}")
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca_file)
            .unwrap_or_else(|error| panic!("cannot read {:?}: {error}", self.ca_file))
    }
}

/// The shared TLS Redis: from the environment, or started once by `scripts/redis-tls.sh`.
pub fn tls_redis() -> TlsRedis {
    static SERVER: OnceLock<TlsRedis> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            if let (Ok(url), Ok(ca_file)) = (
                std::env::var("REDIS_TLS_URL"),
                std::env::var("REDIS_TLS_CA_FILE"),
            ) && !url.is_empty()
            {
                return TlsRedis {
                    url,
                    ca_file: ca_file.into(),
                };
            }
            let dir = scratch_dir("redis-tls");
            let script = workspace_root().join("scripts/redis-tls.sh");
            let output = Command::new(&script)
                .arg("start")
                .arg(&dir)
                .stderr(Stdio::inherit())
                .output()
                .unwrap_or_else(|error| panic!("cannot run {} ({error})", script.display()));
            assert!(
                output.status.success(),
                "scripts/redis-tls.sh failed (it also needs openssl): {HOW_TO_GET_REDIS}"
            );
            watchdog(&format!(
                "'{}' stop '{}'; rm -rf '{}'",
                script.display(),
                dir.display(),
                dir.display()
            ));
            TlsRedis {
                url: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
                ca_file: dir.join("ca.pem"),
            }
        })
        .clone()
}
