//! A small spec-style harness for running the binary: `Test::new().args(..).status(..).run()`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct Test {
    args: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
    status: i32,
    stdout_has: Vec<String>,
    stderr_has: Vec<String>,
    dir: tempfile::TempDir,
}

pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub dir: PathBuf,
}

impl Test {
    pub fn new() -> Test {
        Test {
            args: vec![],
            files: vec![],
            status: 0,
            stdout_has: vec![],
            stderr_has: vec![],
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Test {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// A file in the test's working directory.
    pub fn file(mut self, name: &str, content: impl AsRef<[u8]>) -> Test {
        self.files
            .push((name.to_string(), content.as_ref().to_vec()));
        self
    }

    pub fn status(mut self, code: i32) -> Test {
        self.status = code;
        self
    }

    pub fn stdout_has(mut self, text: &str) -> Test {
        self.stdout_has.push(text.to_string());
        self
    }

    pub fn stderr_has(mut self, text: &str) -> Test {
        self.stderr_has.push(text.to_string());
        self
    }

    /// The test's working directory, with its files written (for a process started beside it).
    pub fn path(&self) -> PathBuf {
        self.write_files();
        self.dir.path().to_path_buf()
    }

    fn write_files(&self) {
        for (name, content) in &self.files {
            let mut f = std::fs::File::create(self.dir.path().join(name)).expect("create");
            f.write_all(content).expect("write");
        }
    }

    pub fn run(self) -> Output {
        self.write_files();
        let out = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
            .args(&self.args)
            .current_dir(self.dir.path())
            .env_remove("NO_COLOR")
            .env_remove("COLUMNS")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("SCC_PORTS_SECRET")
            .stdin(Stdio::null())
            .output()
            .expect("run scc-ports");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code().unwrap_or(-1);
        assert_eq!(
            code, self.status,
            "scc-ports {:?}: exit {code}, wanted {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            self.args, self.status
        );
        for want in &self.stdout_has {
            assert!(
                stdout.contains(want),
                "stdout of {:?} lacks {want:?}:\n{stdout}",
                self.args
            );
        }
        for want in &self.stderr_has {
            assert!(
                stderr.contains(want),
                "stderr of {:?} lacks {want:?}:\n{stderr}",
                self.args
            );
        }
        assert!(!stderr.contains("panicked"), "scc-ports panicked: {stderr}");
        Output {
            stdout,
            stderr,
            dir: self.dir.keep(),
        }
    }
}

/// The path of an example deployment in the repository.
pub fn example(name: &str) -> String {
    format!("{}/examples/{name}.toml", env!("CARGO_MANIFEST_DIR"))
}
