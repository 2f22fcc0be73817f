//! The Valkey VM disk, for real: `bfctl disk build` run twice from scratch
//! gives the same bytes, a third run is a cache hit, and the image boots
//! under QEMU (TCG) with BIOS and with UEFI: Valkey answers only with the
//! password from the NoCloud seed, and a key written before a power cut is
//! there after a restart with a fresh root disk and the same data disk.
//!
//! Needs root and Debian's disk tools (`.ci/install-deps` installs them);
//! without them the build fails with the list of what to install.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bfctl::build::disk::LoadedRecipe;
use bfctl::build::disk::build::{BuiltDisk, DiskBuildOptions, build};
use support::qemu::{Firmware, Vm, overlay, seed_and_blank_data_disk};

/// TCG boots took 50-120 s on these machines; two VMs may share 2 cores.
const BOOT_TIMEOUT: Duration = Duration::from_secs(600);

fn recipe() -> LoadedRecipe {
    LoadedRecipe::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../disk")).unwrap()
}

fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("disk-test")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(out_dir: PathBuf, force: bool) -> DiskBuildOptions {
    DiskBuildOptions {
        out_dir,
        // Shared by the two builds: the second downloads nothing.
        package_cache: Some(test_dir("debs")),
        force,
    }
}

fn build_logged(options: &DiskBuildOptions) -> BuiltDisk {
    let started = Instant::now();
    let built = build(&recipe(), options, |line| {
        if !line.starts_with("mmdebstrap: ") {
            eprintln!("[{:6.1}s] {line}", started.elapsed().as_secs_f64());
        }
    })
    .unwrap_or_else(|error| panic!("bfctl disk build failed: {error:#}"));
    eprintln!(
        "built {} {} ({} bytes, {:.0} s, cached: {})",
        built.path.display(),
        built.digest,
        built.size,
        built.build_seconds,
        built.cached
    );
    built
}

/// The first build of this test run, made from scratch (forced).
fn first_build() -> &'static BuiltDisk {
    static FIRST: OnceLock<BuiltDisk> = OnceLock::new();
    FIRST.get_or_init(|| build_logged(&options(test_dir("first"), true)))
}

/// Builds run one at a time (each is a mmdebstrap of the whole system).
fn build_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`first_build`], waiting for any other build to finish first.
fn the_first_build() -> BuiltDisk {
    let _lock = build_lock();
    first_build().clone()
}

#[test]
fn two_builds_give_the_same_bytes_and_an_unchanged_recipe_is_not_rebuilt() {
    let first = the_first_build();
    let second = {
        let _lock = build_lock();
        build_logged(&options(test_dir("second"), true))
    };
    assert_eq!(
        first.packages, second.packages,
        "the mirror changed between the two builds; run again"
    );
    assert_eq!(
        first.digest, second.digest,
        "two builds of the same recipe and packages differ"
    );
    assert!(!second.cached);
    eprintln!(
        "FIGURE two identical builds: {} and {}",
        first.digest, second.digest
    );

    let started = Instant::now();
    let third = build_logged(&options(test_dir("second"), false));
    assert!(third.cached, "an unchanged recipe was rebuilt");
    assert_eq!(third.digest, second.digest);
    eprintln!(
        "FIGURE cached build: {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // What the issue limits: under 120 MiB compressed, no secret inside.
    assert!(
        first.size < 120 * 1024 * 1024,
        "the disk is {} bytes, over 120 MiB",
        first.size
    );
    assert!(
        first
            .packages
            .iter()
            .any(|p| p.starts_with("valkey-server ")),
        "{:?}",
        first.packages
    );
}

/// Boots a fresh overlay of the built disk with `data` and `seed`, waits for
/// Valkey and returns the VM and the boot-to-PING time.
fn boot(
    work: &Path,
    name: &str,
    data: &Path,
    seed: &Path,
    firmware: Firmware,
    password: &str,
) -> (Vm, Duration) {
    let root = work.join(format!("{name}-root.qcow2"));
    let _ = std::fs::remove_file(&root);
    overlay(&first_build().path, &root);
    let mut vm = Vm::boot(work, &root, data, seed, firmware);
    let took = vm.wait_for_valkey(password, BOOT_TIMEOUT);
    eprintln!(
        "FIGURE {firmware:?} boot {name}: PING after {:.1} s",
        took.as_secs_f64()
    );
    (vm, took)
}

#[test]
fn bios_boot_needs_the_seed_password_and_keeps_data_across_a_restart() {
    the_first_build();
    let work = test_dir("bios");
    let password = bfctl::plan::secrets::generate_password();
    let (seed, data) = seed_and_blank_data_disk(&work, &password);

    let (mut vm, _) = boot(&work, "first", &data, &seed, Firmware::Bios, &password);
    // Without the password, and with a wrong one, nothing is served.
    let mut anonymous = vm.connect(None).expect("a connection without AUTH");
    let refused = redis::cmd("GET")
        .arg("ventas:total")
        .query::<Option<String>>(&mut anonymous)
        .unwrap_err();
    assert!(refused.to_string().contains("NOAUTH"), "{refused}");
    assert!(vm.connect(Some("not-the-password")).is_err());

    let mut connection = vm.connect(Some(&password)).unwrap();
    let _: () = redis::cmd("SET")
        .arg("bfctl:test")
        .arg("survives restarts")
        .query(&mut connection)
        .unwrap();
    let persistence: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut connection)
        .unwrap();
    assert!(persistence.contains("aof_enabled:1"), "{persistence}");
    // appendfsync everysec: give the fsync a moment, then cut the power.
    std::thread::sleep(Duration::from_secs(3));
    vm.kill();
    drop(vm);

    // A new root disk (the containerDisk is ephemeral), the same data disk.
    let (vm, _) = boot(
        &work,
        "after-restart",
        &data,
        &seed,
        Firmware::Bios,
        &password,
    );
    let mut connection = vm.connect(Some(&password)).unwrap();
    let value: Option<String> = redis::cmd("GET")
        .arg("bfctl:test")
        .query(&mut connection)
        .unwrap();
    assert_eq!(value.as_deref(), Some("survives restarts"));
}

#[test]
fn uefi_boot_serves_valkey() {
    the_first_build();
    let work = test_dir("uefi");
    let password = bfctl::plan::secrets::generate_password();
    let (seed, data) = seed_and_blank_data_disk(&work, &password);
    let (vm, _) = boot(&work, "first", &data, &seed, Firmware::Uefi, &password);
    let mut connection = vm.connect(Some(&password)).unwrap();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut connection)
        .unwrap();
    assert!(info.contains("valkey_version:"), "{info}");
}

#[test]
fn the_disk_is_pushed_as_a_containerdisk_and_rendered_by_digest() {
    use bfctl::build::disk::container;
    use bfctl::build::image::registry::RegistryOptions;
    use support::registry::TestRegistry;

    let built = the_first_build();
    let registry = TestRegistry::start(None);
    let state = tempfile::tempdir().unwrap();
    let recipe = recipe();
    let image =
        container::assemble(&built.path, recipe.recipe.source_date_epoch, &built.inputs).unwrap();
    let options = RegistryOptions {
        insecure: false,
        ca_files: Vec::new(),
        auth: oci_client::secrets::RegistryAuth::Anonymous,
    };
    let url = format!("{}/bf", registry.host);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let push = || {
        runtime
            .block_on(container::push_and_record(
                &image,
                &url,
                &options,
                state.path(),
                &built.inputs,
            ))
            .unwrap()
    };
    let first = push();
    assert!(first.bytes_uploaded > 90_000_000, "{first:?}");
    // Unchanged: nothing sent again.
    let second = push();
    assert_eq!(second.bytes_uploaded, 0, "{second:?}");
    assert_eq!(second.digest, first.digest);

    // `bfctl up` reads this record: current for this recipe, named by digest.
    let recorded = bfctl::build::image::ImageState::load(state.path()).unwrap();
    assert!(container::recorded_is_current(
        &recorded,
        &url,
        &built.inputs
    ));
    assert!(!container::recorded_is_current(
        &recorded,
        &url,
        "sha256:other-recipe"
    ));
    let config = bfctl::plan::config::Config::parse(
        &format!("registry:\n  url: {url}\n  credentials: none\ncarnet: \"201900006\"\n"),
        "test bfctl.yaml",
    )
    .unwrap();
    let (refs, _) = bfctl::build::image_refs(&config, &recorded);
    assert_eq!(
        refs.valkey_disk,
        format!("{url}/valkey-disk@{}", first.digest)
    );
    let rendered = bfctl::plan::render::render(&config, &refs).unwrap();
    let vm = rendered
        .iter()
        .flat_map(|component| &component.objects)
        .find(|object| object["kind"] == "VirtualMachine")
        .unwrap();
    let vm = serde_json::to_value(vm).unwrap();
    let volumes = vm["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["containerDisk"]["image"] == refs.valkey_disk.as_str()),
        "{vm}"
    );

    // What a registry client sees: one layer with /disk/valkey.qcow2, uid 107.
    let reference = format!("docker://{}", refs.valkey_disk);
    let output = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--config", &reference])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config_json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(config_json["config"]["User"], "107:107");
    let copy = tempfile::tempdir().unwrap();
    let target = format!("dir:{}", copy.path().display());
    let output = std::process::Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", &reference, &target])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let layer_digest = image.layers[0]
        .digest
        .trim_start_matches("sha256:")
        .to_string();
    let layer = std::fs::File::open(copy.path().join(layer_digest)).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    let entries: Vec<(String, u64, u64)> = archive
        .entries()
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.path().unwrap().display().to_string(),
                entry.header().uid().unwrap(),
                entry.header().size().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("disk/".to_string(), 0, 0),
            ("disk/valkey.qcow2".to_string(), 107, built.size)
        ]
    );
}

#[test]
fn a_host_without_the_tools_is_told_what_to_install_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let recipe_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../disk");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bfctl"))
        .args(["disk", "build", "--recipe", recipe_dir.to_str().unwrap()])
        .current_dir(dir.path())
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "mmdebstrap (package mmdebstrap)",
        "sfdisk (package fdisk)",
        "qemu-img (package qemu-utils)",
        "apt-get install",
    ] {
        assert!(
            error.contains(expected),
            "{expected:?} missing from: {error}"
        );
    }
    assert!(
        !dir.path().join(".bfctl/disk/valkey.qcow2").exists(),
        "nothing was built"
    );
}

/// `bfctl disk push` to the registry bfctl provides: its stored push
/// account and CA, no docker login and no --ca-file. The registry is the
/// distribution registry started with bfctl's certificate, key and htpasswd
/// file, made by bfctl's own code.
#[test]
fn bfctl_disk_push_uses_the_provided_registrys_account_and_ca() {
    use bfctl::registry::{accounts::Accounts, pki, store};
    use support::registry::{TestRegistry, free_port};

    let built = the_first_build();
    let state = tempfile::tempdir().unwrap();
    // The disk from the first build is the cached one for this recipe.
    std::os::unix::fs::symlink(built.path.parent().unwrap(), state.path().join("disk")).unwrap();

    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let store = store::Store::under(state.path());
    let ca = pki::new_ca("test").unwrap();
    let loopback = "127.0.0.1".parse().unwrap();
    store.save_ca(&ca).unwrap();
    store
        .save_server(&pki::server_certificate(&ca, loopback, loopback, "").unwrap())
        .unwrap();
    store.save_accounts(&Accounts::generate()).unwrap();
    store
        .record(&store::Recorded {
            kind: "zot".into(),
            project: "my-project-id".into(),
            location: "europe-west1-b".into(),
            name: "bfctl-registry".into(),
            address: "127.0.0.1".into(),
            host: host.clone(),
            url: format!("{host}/blackfriday"),
            pull_host: host.clone(),
            pull_url: format!("{host}/blackfriday"),
        })
        .unwrap();
    let _registry = TestRegistry::start_on(
        port,
        Some(&store.path("htpasswd")),
        Some((store.path("server.pem"), store.path("server-key.pem"))),
        None,
    );
    let config = state.path().join("bfctl.yaml");
    std::fs::write(
        &config,
        "registry:\n  kind: zot\n  zot:\n    project: my-project-id\n    zone: europe-west1-b\ncarnet: \"201900006\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bfctl"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("HOME", state.path())
        .env_remove("DOCKER_CONFIG")
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(state.path())
        .args(["disk", "push"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    eprintln!("$ bfctl disk push\n{stderr}{stdout}");
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("{host}/blackfriday/valkey-disk@sha256:")),
        "{stdout}"
    );
}
