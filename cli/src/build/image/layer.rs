//! One image layer, built the same way every time: a tar of the given files
//! (sorted, with their parent directories, owned by root, every time stamp
//! set to SOURCE_DATE_EPOCH), gzip-compressed with no name and no time in
//! its header. The same files give the same bytes, hence the same digest.

use std::collections::BTreeSet;

use anyhow::Context;
use flate2::{Compression, GzBuilder};

use crate::build::image::sha256_digest;

/// A file to put in a layer.
#[derive(Debug, Clone)]
pub struct LayerFile {
    /// Path inside the image, absolute (`/usr/local/bin/gateway`).
    pub path: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub data: Vec<u8>,
}

/// A built layer: the compressed blob and the two digests an image needs.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The gzip blob as pushed.
    pub compressed: Vec<u8>,
    /// `sha256:` of the compressed blob (the manifest's layer digest).
    pub digest: String,
    /// `sha256:` of the uncompressed tar (the config's `diff_ids`).
    pub diff_id: String,
}

/// Builds a layer from `files`, every entry dated `mtime` (seconds).
pub fn build(files: &[LayerFile], mtime: u64) -> anyhow::Result<Layer> {
    let mut sorted: Vec<&LayerFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut directories: BTreeSet<String> = BTreeSet::new();
    for file in &sorted {
        let mut parent = std::path::Path::new(file.path.trim_start_matches('/')).parent();
        while let Some(directory) = parent {
            if directory.as_os_str().is_empty() {
                break;
            }
            directories.insert(format!("{}/", directory.display()));
            parent = directory.parent();
        }
    }

    let mut tar = tar::Builder::new(Vec::new());
    for directory in &directories {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_path(directory)?;
        header.set_mode(0o755);
        header.set_size(0);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        tar.append(&header, std::io::empty())
            .with_context(|| format!("adding {directory} to the layer"))?;
    }
    for file in sorted {
        let path = file.path.trim_start_matches('/');
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_path(path)?;
        header.set_mode(file.mode);
        header.set_size(file.data.len() as u64);
        header.set_mtime(mtime);
        header.set_uid(file.uid);
        header.set_gid(file.gid);
        header.set_cksum();
        tar.append(&header, file.data.as_slice())
            .with_context(|| format!("adding {path} to the layer"))?;
    }
    let uncompressed = tar.into_inner().context("finishing the layer tar")?;
    let diff_id = sha256_digest(&uncompressed);

    let mut gzip = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    std::io::Write::write_all(&mut gzip, &uncompressed).context("compressing the layer")?;
    let compressed = gzip.finish().context("compressing the layer")?;
    Ok(Layer {
        digest: sha256_digest(&compressed),
        diff_id,
        compressed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &[u8]) -> LayerFile {
        LayerFile {
            path: path.into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            data: data.to_vec(),
        }
    }

    #[test]
    fn the_same_files_give_the_same_bytes_in_any_order() {
        let a = build(&[file("/usr/local/bin/a", b"A"), file("/etc/b", b"B")], 1).unwrap();
        let b = build(&[file("/etc/b", b"B"), file("/usr/local/bin/a", b"A")], 1).unwrap();
        assert_eq!(a.compressed, b.compressed);
        assert_eq!(a.digest, b.digest);
        let later = build(&[file("/etc/b", b"B"), file("/usr/local/bin/a", b"A")], 2).unwrap();
        assert_ne!(a.diff_id, later.diff_id, "the date is part of the content");
    }

    #[test]
    fn parents_come_first_and_files_keep_their_mode_and_owner() {
        let mut owned = file("/disk/valkey.qcow2", b"disk");
        owned.uid = 107;
        owned.mode = 0o644;
        let layer = build(&[owned], 0).unwrap();
        let tar = flate2::read::GzDecoder::new(layer.compressed.as_slice());
        let mut archive = tar::Archive::new(tar);
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                ("disk/".to_string(), 0o755, 0),
                ("disk/valkey.qcow2".to_string(), 0o644, 107)
            ]
        );
    }
}
