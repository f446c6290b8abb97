//! Wall-clock cost of starting and stopping volumes, the storage share of a qube's start latency. Ignored by
//! default (timings are not assertions); run with
//! `cargo test -p corral-storage --release --test start_bench -- --ignored --nocapture`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use corral_core::volume::Driver;
use corral_storage::Storage;

use common::*;

const S: Storage = Storage;
const CYCLES: usize = 20;
const GIB: u64 = 1024 * MIB;

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let total: Duration = samples.iter().sum();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label:<44} mean {:6.2} ms  median {:6.2} ms  min {:6.2} ms  max {:6.2} ms",
        ms(total) / samples.len() as f64,
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
    );
}

#[test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
fn start_stop_cycles() {
    let fx = Fixture::new(Driver::File);
    let origin = template_root("fedora", 10 * GIB);
    create_owned(&fx.pool, &origin);
    let snap = snapshot_root("work", "fedora", 10 * GIB);
    let vol = volatile("work", 10 * GIB);
    let o = Some((&fx.pool, &origin));
    let next = fx.dir().join("appvms/work/root-cow.qcow2.next");
    let time = |samples: &mut Vec<Duration>, f: &dyn Fn()| {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    };

    // One untimed cycle so first-use costs (directory creation, page cache) do not skew the figures.
    S.start_volume(&fx.pool, &snap, o).unwrap();
    S.stop_volume(&fx.pool, &snap).unwrap();
    let mut s: [Vec<Duration>; 8] = Default::default();
    for _ in 0..CYCLES {
        // Steady state: the stop before prepared the overlay this start takes.
        time(&mut s[0], &|| drop(S.start_volume(&fx.pool, &snap, o).unwrap()));
        time(&mut s[1], &|| drop(S.start_volume(&fx.pool, &vol, None).unwrap()));
        // What the service runs in the background after a start.
        time(&mut s[2], &|| S.prepare_next(&fx.pool, &snap, o).unwrap());
        // Finds the background preparation fitting, so only removes files.
        time(&mut s[3], &|| S.stop_volume(&fx.pool, &snap).unwrap());
        time(&mut s[4], &|| S.stop_volume(&fx.pool, &vol).unwrap());
        // Nothing prepared (first start, or the origin changed size): qemu-img on the start path.
        std::fs::remove_file(&next).unwrap();
        time(&mut s[5], &|| drop(S.start_volume(&fx.pool, &snap, o).unwrap()));
        // Without a background preparation the stop prepares itself.
        time(&mut s[6], &|| S.stop_volume(&fx.pool, &snap).unwrap());
        // A stop that has nothing to prepare (already fits) and no overlay.
        time(&mut s[7], &|| S.stop_volume(&fx.pool, &snap).unwrap());
    }
    println!("{CYCLES} cycles, 10 GiB sparse origin, in {}", fx.dir().display());
    let labels = [
        "start_volume snapshot, prepared",
        "start_volume volatile",
        "prepare_next after start (background)",
        "stop_volume snapshot, already prepared",
        "stop_volume volatile",
        "start_volume snapshot, nothing prepared",
        "stop_volume snapshot, preparing",
        "stop_volume snapshot, again",
    ];
    for (label, samples) in labels.into_iter().zip(s) {
        summary(label, samples);
    }
}
