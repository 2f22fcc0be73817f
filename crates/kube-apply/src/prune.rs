//! Prune: after a successful apply, deletes what this install applied in an
//! earlier run and no longer renders, with the same safety rules as a
//! teardown ([`crate::inventory::why_keep`]). Objects of other installs are
//! counted and named, never touched; the install's record, and objects
//! already being deleted, are left alone.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::client::{Cluster, ObjectRef};
use crate::error::Result;
use crate::graph::{Event, Observer};
use crate::inventory;

/// Another install found while pruning: how many objects, and where.
#[derive(Debug, Clone, Serialize)]
pub struct OtherInstall {
    pub objects: usize,
    pub namespaces: Vec<String>,
}

/// What a prune did.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    pub deleted: Vec<String>,
    /// Left in place, "object: reason".
    pub kept: Vec<String>,
    pub other_installs: BTreeMap<String, OtherInstall>,
}

/// Deletes this install's objects that are not in `rendered`.
pub async fn prune(
    cluster: &Cluster,
    rendered: &BTreeSet<ObjectRef>,
    install: &str,
    observer: &dyn Observer,
) -> Result<Pruned> {
    let record_component = cluster.identity().record_component;
    let mut pruned = Pruned::default();
    let scanned = inventory::scan(cluster).await?;
    let rendered_keys: BTreeSet<_> = rendered.iter().map(inventory::key).collect();
    for owned in &scanned {
        if owned.install() != install
            || rendered_keys.contains(&inventory::key(&owned.object))
            || owned.component() == record_component
            || owned.terminating()
        {
            continue;
        }
        if let Some(reason) =
            inventory::why_keep(cluster, &owned.object, &owned.live, install).await?
        {
            pruned.kept.push(format!("{}: {reason}", owned.object));
            continue;
        }
        if cluster.delete(&owned.object).await? {
            observer.event(Event::Deleted {
                object: owned.object.clone(),
            });
            pruned.deleted.push(owned.object.to_string());
        }
    }
    for (name, (objects, namespaces)) in inventory::other_installs(&scanned, install) {
        pruned.other_installs.insert(
            name,
            OtherInstall {
                objects,
                namespaces: namespaces.into_iter().collect(),
            },
        );
    }
    Ok(pruned)
}
