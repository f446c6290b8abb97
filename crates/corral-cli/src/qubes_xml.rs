//! `corral import-qubes-xml` / `export-qubes-xml`: moving a Qubes host's metadata in and out. Both work on
//! the state directory directly, so import refuses to run while a daemon holds it.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use corral_core::HostInfo;
use corral_store::{qubes_xml, Durability};

/// corrald holds this lock for as long as it runs. The directory and lock are made as the daemon makes them
/// (a state directory others may pass through but not list, files its owner's only), whatever the umask.
fn lock_state(state_dir: &Path) -> anyhow::Result<File> {
    std::fs::DirBuilder::new().recursive(true).mode(0o711).create(state_dir)?;
    let lock =
        File::options().write(true).create(true).truncate(false).mode(0o600).open(state_dir.join("corral.lock"))?;
    if lock.try_lock().is_err() {
        bail!("{} is in use by a running corrald; stop it first", state_dir.display());
    }
    Ok(lock)
}

pub fn import(file: &Path, state_dir: &Path) -> anyhow::Result<()> {
    let _lock = lock_state(state_dir)?;
    let xml = std::fs::read_to_string(file).with_context(|| format!("Cannot read {}", file.display()))?;
    let imported = qubes_xml::import(&xml).with_context(|| format!("Cannot parse {}", file.display()))?;
    let qubes = match corral_service::import_model(state_dir, Durability::PowerLoss, imported.ops) {
        Ok(qubes) => qubes,
        Err(corral_service::ImportError::Refused(e)) => bail!("{}: {}", state_dir.display(), e.message),
        Err(e) => return Err(e).context("Cannot store the imported qubes"),
    };
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    println!("imported {qubes} qubes into {}", state_dir.display());
    Ok(())
}

pub fn export(state_dir: &Path) -> anyhow::Result<()> {
    if !state_dir.join("corral.sqlite").exists() {
        bail!("no Corral state in {}", state_dir.display());
    }
    let store = corral_service::open_store(state_dir, Durability::ProcessCrash)?;
    let (app, _) = store.load(HostInfo { memory_mib: 0, cpus: 0 })?;
    print!("{}", qubes_xml::export(&app));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use corral_store::{SqliteStore, StateStore};

    use super::*;

    const FIXTURE: &str = include_str!("../../corral-store/tests/fixtures/qubes.xml");

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    fn qube_names(state_dir: &Path) -> Vec<String> {
        let store = SqliteStore::open(&state_dir.join("corral.sqlite"), Durability::ProcessCrash).expect("open");
        let (app, warnings) = store.load(HostInfo { memory_mib: 0, cpus: 0 }).expect("load");
        assert!(warnings.is_empty(), "{warnings:?}");
        let mut names: Vec<String> = app.domains().map(|d| d.name.clone()).collect();
        names.sort();
        names
    }

    /// The import makes the state directory as the daemon would: its files private whatever the umask of
    /// the user running the CLI, so that nothing is readable by others until the daemon's next start.
    #[test]
    fn an_import_makes_a_private_state_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("qubes.xml");
        std::fs::write(&file, FIXTURE).expect("fixture");
        let state_dir = dir.path().join("state");

        import(&file, &state_dir).expect("import");

        assert_eq!(mode(&state_dir), 0o711);
        for name in ["corral.lock", "corral.sqlite"] {
            assert_eq!(mode(&state_dir.join(name)), 0o600, "{name}");
        }
        // SQLite removes these when its last connection closes; while they are there, they are private too.
        for name in ["corral.sqlite-wal", "corral.sqlite-shm"] {
            let path = state_dir.join(name);
            assert!(!path.exists() || mode(&path) == 0o600, "{name}");
        }
        assert!(qube_names(&state_dir).len() > 1);
    }

    /// A state that holds qubes refuses a second import, and is left as it was.
    #[test]
    fn a_second_import_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("qubes.xml");
        std::fs::write(&file, FIXTURE).expect("fixture");
        let state_dir = dir.path().join("state");
        import(&file, &state_dir).expect("first import");
        let before = qube_names(&state_dir);
        let other = dir.path().join("other.xml");
        std::fs::write(
            &other,
            "<qubes><domains><domain class=\"StandaloneVM\"><properties><property name=\"name\">late</property>\
             <property name=\"qid\">77</property><property name=\"label\">red</property></properties></domain>\
             </domains></qubes>",
        )
        .expect("other");

        let refused = import(&other, &state_dir).expect_err("refused");

        assert!(refused.to_string().contains("already holds qubes"), "{refused:#}");
        assert_eq!(qube_names(&state_dir), before);
    }
}
