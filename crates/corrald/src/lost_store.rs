//! A state database that holds no qubes next to a state directory full of qube images has most likely
//! lost its content (deleted, or a WAL cut short): starting on it would serve an empty host while the
//! images sit unused, and new qubes could be created over them. corrald stops and says so instead.

use std::path::{Path, PathBuf};

use corral_store::{Durability, SqliteStore, StateStore};

/// The qube directories of the state directory's own file pool (`appvms/<qube>`, `vm-templates/<qube>`)
/// that hold a file some qube owned: files a create made before its commit are marked `<file>.unowned` until
/// then, so a create cut short by a crash leaves only marked files, which say nothing of a lost database.
fn image_dirs(state_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for kind in ["appvms", "vm-templates"] {
        let Ok(entries) = std::fs::read_dir(state_dir.join(kind)) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if holds_owned_files(&path) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Whether `dir` holds a file that is neither an `.unowned` marker nor marked by one.
fn holds_owned_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        !name.ends_with(".unowned") && !dir.join(format!("{name}.unowned")).exists()
    })
}

pub fn refuse_lost_store(state_dir: &Path, accept: bool) -> anyhow::Result<()> {
    let images = image_dirs(state_dir);
    if images.is_empty() {
        return Ok(());
    }
    let path = state_dir.join("corral.sqlite");
    let mut store = SqliteStore::open(&path, Durability::PowerLoss)?;
    if store.qube_rows()? > 0 || store.empty_store_accepted()? {
        return Ok(());
    }
    let shown: Vec<String> = images.iter().take(5).map(|p| p.display().to_string()).collect();
    let more = images.len().saturating_sub(shown.len());
    let listed = if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") };
    if accept {
        tracing::warn!(
            images = %listed,
            "--accept-empty-store: starting with a state database that holds no qubes; the images beside it \
             are kept but belong to no qube"
        );
        store.accept_empty_store()?;
        return Ok(());
    }
    anyhow::bail!(
        "the state database {} holds no qubes, but qube images are in {}: {listed}. The database was probably \
         lost or damaged (a deleted or truncated corral.sqlite-wal loses what it held). Restore corral.sqlite \
         and corral.sqlite-wal from a backup, or re-create the qubes with `corral import-qubes-xml`; to start \
         empty anyway (the images are kept, unused), run corrald once with --accept-empty-store",
        path.display(),
        state_dir.display()
    )
}

/// Image directories no loaded qube's volume points into: what a partly lost database (or a quarantined
/// qube) left behind. Nothing is deleted; the operator is told, once, at start.
pub fn warn_unowned_images(state_dir: &Path, app: &corral_service::View) {
    let owned: std::collections::HashSet<PathBuf> = app
        .domains()
        .flat_map(|d| d.volumes.iter())
        .filter_map(|v| {
            let pool = app.pool(&v.pool).filter(|p| p.driver == corral_core::volume::Driver::File)?;
            let mut parts = v.vid.split('/');
            Some(Path::new(&pool.dir_path).join(parts.next()?).join(parts.next()?))
        })
        .collect();
    let unowned: Vec<String> =
        image_dirs(state_dir).into_iter().filter(|p| !owned.contains(p)).map(|p| p.display().to_string()).collect();
    if !unowned.is_empty() {
        tracing::warn!(
            directories = %unowned.join(", "),
            "{} qube image directories belong to no loaded qube: the state database may have lost those qubes \
             (restore it from a backup) or holds them quarantined (see above); the images are left as they are",
            unowned.len()
        );
    }
}
