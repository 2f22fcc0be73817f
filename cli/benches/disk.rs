//! `cargo bench -p bfctl --bench disk` (as root, with the disk tools of
//! `.ci/install-deps`): the Valkey VM disk's figures for
//! docs/benchmarks.md: build time from scratch (packages already in the
//! local .deb cache, so the mirror's speed is not measured) and from the
//! build cache, the compressed qcow2's size, the containerDisk image's
//! size, and boot-to-PING under QEMU/TCG with BIOS and with UEFI.

#[allow(dead_code)]
#[path = "../tests/support/qemu.rs"]
mod qemu;

use std::time::{Duration, Instant};

use bfctl::build::disk::LoadedRecipe;
use bfctl::build::disk::build::{DiskBuildOptions, build};

fn main() -> anyhow::Result<()> {
    let recipe =
        LoadedRecipe::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../disk"))?;
    let work = tempfile::tempdir()?;
    let options = |force| DiskBuildOptions {
        out_dir: work.path().join("disk"),
        package_cache: std::env::var_os("HOME")
            .map(|home| std::path::PathBuf::from(home).join(".cache/bfctl/debs")),
        force,
    };
    let started = Instant::now();
    let built = build(&recipe, &options(true), |_| {})?;
    let scratch = started.elapsed();
    let started = Instant::now();
    let cached = build(&recipe, &options(false), |_| {})?;
    let from_cache = started.elapsed();
    anyhow::ensure!(cached.cached && cached.digest == built.digest);
    let image = bfctl::build::disk::container::assemble(
        &built.path,
        recipe.recipe.source_date_epoch,
        &built.inputs,
    )?;

    let mut boots = Vec::new();
    for firmware in [qemu::Firmware::Bios, qemu::Firmware::Uefi] {
        let password = bfctl::plan::secrets::generate_password();
        let (seed, data) = qemu::seed_and_blank_data_disk(work.path(), &password);
        let root = work.path().join("root.qcow2");
        let _ = std::fs::remove_file(&root);
        qemu::overlay(&built.path, &root);
        let mut vm = qemu::Vm::boot(work.path(), &root, &data, &seed, firmware);
        boots.push((
            firmware,
            vm.wait_for_valkey(&password, Duration::from_secs(600)),
        ));
    }

    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| build from scratch (.debs cached) | {:.0} s |",
        scratch.as_secs_f64()
    );
    println!(
        "| build with an unchanged recipe | {:.2} s |",
        from_cache.as_secs_f64()
    );
    println!(
        "| valkey.qcow2 (compressed) | {:.1} MiB ({} bytes) |",
        built.size as f64 / 1048576.0,
        built.size
    );
    println!(
        "| containerDisk image (gzip layer + config + manifest) | {:.1} MiB |",
        image.size() as f64 / 1048576.0
    );
    for (firmware, took) in boots {
        println!(
            "| boot to PING, {firmware:?}, TCG, 1 vCPU, first boot (formats the data disk) | {:.0} s |",
            took.as_secs_f64()
        );
    }
    println!("| packages in the image | {} |", built.packages.len());
    println!("| digest | `{}` |", built.digest);
    Ok(())
}
