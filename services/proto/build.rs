//! Compiles `proto/blackfriday.proto` with a vendored `protoc`, so that no
//! system package is needed to build the workspace.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure().compile_protos(&["proto/blackfriday.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/blackfriday.proto");
    Ok(())
}
