//! `corral import-qubes-xml` / `export-qubes-xml`: moving a Qubes host's metadata in and out. Both work on
//! the state directory directly, so import refuses to run while a daemon holds it.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context};
use corral_core::HostInfo;
use corral_store::{qubes_xml, Durability};

/// corrald holds this lock for as long as it runs.
fn lock_state(state_dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(state_dir)?;
    let lock = File::create(state_dir.join("corral.lock"))?;
    if lock.try_lock().is_err() {
        bail!("{} is in use by a running corrald; stop it first", state_dir.display());
    }
    Ok(lock)
}

pub fn import(file: &Path, state_dir: &Path) -> anyhow::Result<()> {
    let _lock = lock_state(state_dir)?;
    let xml = std::fs::read_to_string(file).with_context(|| format!("Cannot read {}", file.display()))?;
    let imported = qubes_xml::import(&xml).with_context(|| format!("Cannot parse {}", file.display()))?;
    let mut store = corral_service::open_store(state_dir, Durability::PowerLoss)?;
    let (app, _) = store.load(HostInfo { memory_mib: 0, cpus: 0 })?;
    if app.domain_count() > 1 {
        bail!("{} already holds qubes; import into a fresh state directory", state_dir.display());
    }
    store.commit(&imported.ops).context("Cannot store the imported qubes")?;
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    let (app, _) = store.load(HostInfo { memory_mib: 0, cpus: 0 })?;
    println!("imported {} qubes into {}", app.domain_count() - 1, state_dir.display());
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
