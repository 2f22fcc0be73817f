//! The Valkey VM disk booted for real under `qemu-system-x86_64` with
//! software emulation (TCG; there is no KVM here), the way KubeVirt would
//! boot it: the disk as a copy-on-write overlay (a containerDisk is
//! ephemeral), a data disk with the serial `valkey-data`, and a NoCloud seed
//! (a FAT volume labelled CIDATA) with the user-data bfctl generates.
//! Valkey's port is forwarded to 127.0.0.1 only. The VM is killed when the
//! [`Vm`] is dropped, on every path.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Firmware {
    /// SeaBIOS, QEMU's and KubeVirt's default.
    Bios,
    /// OVMF from Debian's ovmf package.
    Uefi,
}

pub struct Vm {
    child: Child,
    pub port: u16,
    pub serial_log: PathBuf,
    pub started: Instant,
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A fresh copy-on-write overlay of `base` (the built image stays as is).
pub fn overlay(base: &Path, path: &Path) {
    let base = base.canonicalize().expect("the built disk exists");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            base.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
    );
}

/// A blank data disk (what a new PersistentVolumeClaim is).
pub fn blank_disk(path: &Path, size: &str) {
    run(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", path.to_str().unwrap(), size],
    );
}

/// A NoCloud seed: a small FAT image labelled CIDATA holding `user-data`
/// and `meta-data`, made with mtools (no mount).
pub fn nocloud_seed(path: &Path, user_data: &str) {
    let dir = path.parent().unwrap();
    let user = dir.join("user-data");
    let meta = dir.join("meta-data");
    std::fs::write(&user, user_data).unwrap();
    std::fs::write(&meta, "instance-id: bfctl-test\nlocal-hostname: valkey\n").unwrap();
    let _ = std::fs::remove_file(path);
    run(
        "mkfs.fat",
        &["-C", "-n", "CIDATA", path.to_str().unwrap(), "2048"],
    );
    for file in [&user, &meta] {
        run(
            "mcopy",
            &["-i", path.to_str().unwrap(), file.to_str().unwrap(), "::"],
        );
    }
}

/// A new VM's other disks in `work`: a NoCloud seed carrying `password`
/// (the user-data bfctl generates) and a blank 1 GiB data disk. Returns
/// (seed, data).
pub fn seed_and_blank_data_disk(work: &Path, password: &str) -> (PathBuf, PathBuf) {
    let seed = work.join("seed.img");
    nocloud_seed(&seed, &bfctl::plan::secrets::cloud_init_user_data(password));
    let data = work.join("data.qcow2");
    let _ = std::fs::remove_file(&data);
    blank_disk(&data, "1G");
    (seed, data)
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Vm {
    /// Boots `root` (a qcow2) with `data` (serial valkey-data) and `seed`.
    pub fn boot(work: &Path, root: &Path, data: &Path, seed: &Path, firmware: Firmware) -> Vm {
        let port = free_port();
        let serial_log = work.join(format!(
            "serial-{}-{}.log",
            if firmware == Firmware::Bios {
                "bios"
            } else {
                "uefi"
            },
            port
        ));
        let mut args: Vec<String> = [
            "-machine",
            "q35,accel=tcg",
            "-cpu",
            "max",
            "-smp",
            "1",
            "-m",
            "1024",
            "-nographic",
            "-monitor",
            "none",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("-serial".into());
        args.push(format!("file:{}", serial_log.display()));
        args.push("-netdev".into());
        args.push(format!("user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:6379"));
        args.push("-device".into());
        args.push("virtio-net-pci,netdev=net0".into());
        args.push("-drive".into());
        args.push(format!(
            "file={},if=none,id=root,format=qcow2",
            root.display()
        ));
        // Boot from the root disk (KubeVirt sets the boot order the same way).
        args.push("-device".into());
        args.push("virtio-blk-pci,drive=root,bootindex=0".into());
        args.push("-drive".into());
        args.push(format!(
            "file={},if=none,id=data,format=qcow2",
            data.display()
        ));
        args.push("-device".into());
        args.push("virtio-blk-pci,drive=data,serial=valkey-data".into());
        args.push("-drive".into());
        args.push(format!(
            "file={},if=virtio,format=raw,readonly=on",
            seed.display()
        ));
        if firmware == Firmware::Uefi {
            let vars = work.join("OVMF_VARS.fd");
            std::fs::copy("/usr/share/OVMF/OVMF_VARS_4M.fd", &vars)
                .expect("OVMF (Debian package ovmf) is installed");
            args.push("-drive".into());
            args.push(
                "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
                    .into(),
            );
            args.push("-drive".into());
            args.push(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ));
        }
        let child = Command::new("qemu-system-x86_64")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 starts (Debian package qemu-system-x86)");
        Vm {
            child,
            port,
            serial_log,
            started: Instant::now(),
        }
    }

    /// The last lines the VM printed on its serial console.
    pub fn serial_tail(&self, lines: usize) -> String {
        testkit::process::tail_lines(&self.serial_log, lines)
    }

    /// Waits until Valkey answers PING after AUTH with `password`; returns
    /// the time since boot. Panics with the console's tail on timeout or if
    /// QEMU exits.
    pub fn wait_for_valkey(&mut self, password: &str, timeout: Duration) -> Duration {
        let deadline = self.started + timeout;
        let mut last_error = String::from("no attempt yet");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "QEMU exited ({status}) before Valkey answered; console:\n{}",
                    self.serial_tail(40)
                );
            }
            match self
                .connect(Some(password))
                .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
            {
                Ok(pong) if pong == "PONG" => return self.started.elapsed(),
                Ok(other) => last_error = format!("PING answered {other:?}"),
                Err(error) => last_error = error.to_string(),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!(
            "Valkey did not answer PING within {timeout:?} (last: {last_error}); console:\n{}",
            self.serial_tail(60)
        );
    }

    /// A connection to Valkey, authenticated when `password` is given.
    pub fn connect(&self, password: Option<&str>) -> redis::RedisResult<redis::Connection> {
        let url = match password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        };
        redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(5))
    }

    /// Powers the VM off at once (like a node dying).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}
