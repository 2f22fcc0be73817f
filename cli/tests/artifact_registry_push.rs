//! How bfctl pushes to an Artifact Registry repository: as
//! `oauth2accesstoken`, with an access token from the same credentials as
//! every other Google call (here a service-account key whose JWT the fake
//! token endpoint verifies). Alone in its test binary: it sets
//! GOOGLE_APPLICATION_CREDENTIALS in this process, which no other test
//! thread may read meanwhile.
//!
//! Not here: a push to the real service (`e2e_gke.rs` when given a project).

use std::path::Path;
use std::time::Duration;

use fake_google::FakeGke;

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_push_account_is_oauth2accesstoken_with_a_token_the_credentials_give() {
    let google = FakeGke::start(
        &fake_google::google_apis_dir().join("container.v1.json"),
        "my-project-id",
        Duration::from_millis(20),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bfctl.yaml");
    std::fs::write(
        &path,
        "registry:\n  kind: artifact-registry\n  artifactRegistry:\n    project: my-project-id\n    location: europe-west1\ncarnet: \"201900006\"\n",
    )
    .unwrap();
    let mut config = bfctl::plan::config::Config::load(&path).unwrap();
    bfctl::registry::store::resolve(&mut config, &dir.path().join(".bfctl")).unwrap();
    assert_eq!(
        config.registry.url,
        "europe-west1-docker.pkg.dev/my-project-id/blackfriday"
    );
    // SAFETY: the only test in this binary; the runtime's one worker runs
    // the fake's server, which reads no environment variable.
    unsafe {
        std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &google.account.key_file);
    }
    let access = tokio::task::spawn_blocking(move || {
        bfctl::registry::push_access(&config, Path::new("unused"))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(access.username, "oauth2accesstoken");
    assert!(
        google.account.accepts(&access.password),
        "a token the token endpoint issued"
    );
    assert!(
        access.ca_files.is_empty(),
        "Artifact Registry has a public certificate"
    );
}
