//! The fuzz targets in ordinary `cargo test`: every file of `fuzz/corpus/<target>/`
//! is replayed through its entry point in `tether_proto::fuzzing`, then a few
//! thousand inputs from a fixed-seed generator run through each, so the harness
//! and the invariants it checks are exercised on every CI run, with no fuzzer.
//!
//! A crash found by `fuzz/run.sh` is fixed, then its input is added to the
//! corpus, where this test keeps it fixed.

use std::fs;
use std::path::{Path, PathBuf};

use tether_proto::fuzzing;
use tether_proto::Rng;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("decode", fuzzing::decode),
    ("lifecycle", fuzzing::lifecycle),
    ("session", fuzzing::session),
    ("hosted", fuzzing::hosted),
];

/// Generated inputs per target on top of the corpus.
const SMOKE_INPUTS: usize = 2_000;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let data = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (path, data)
        })
        .collect();
    files.sort();
    files
}

/// Runs one input, naming it if the target panics (the panic message itself is
/// printed by the default hook just before).
fn replay(target: &str, run: Target, name: &str, data: &[u8]) {
    let outcome = std::panic::catch_unwind(|| run(data));
    if outcome.is_err() {
        panic!("fuzz target `{target}` failed on {name} ({} bytes)", data.len());
    }
}

#[test]
fn every_corpus_file_passes_its_target() {
    for (target, run) in TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "no corpus for `{target}`");
        for (path, data) in &files {
            replay(target, run, &path.display().to_string(), data);
        }
    }
}

/// An input from the corpus, mutated the way a fuzzer would: bytes flipped,
/// cut, duplicated or spliced with another input.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let pick = |rng: &mut Rng| -> Vec<u8> {
        let n = rng.below_inclusive(seeds.len().saturating_sub(1) as u64) as usize;
        seeds.get(n).cloned().unwrap_or_default()
    };
    let mut data = pick(rng);
    for _ in 0..=rng.below_inclusive(4) {
        let len = data.len() as u64;
        let at = rng.below_inclusive(len) as usize;
        match rng.below_inclusive(5) {
            0 if at < data.len() => data[at] = rng.next_u64() as u8,
            1 => data.truncate(at),
            2 => data.insert(at, rng.next_u64() as u8),
            3 => {
                let other = pick(rng);
                let from = rng.below_inclusive(other.len() as u64) as usize;
                data.splice(at..at, other[from..].iter().copied().take(64));
            }
            4 => {
                // Structural characters are what JSON decoding trips over.
                const STRUCTURAL: &[u8] = b"{}[]\",:\\0-eE.tn ";
                let c = rng.below_inclusive(STRUCTURAL.len() as u64 - 1) as usize;
                data.insert(at, STRUCTURAL[c]);
            }
            _ => {
                let fresh: Vec<u8> = (0..rng.below_inclusive(64))
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                data.splice(at..at, fresh);
            }
        }
    }
    data
}

#[test]
fn generated_inputs_pass_every_target() {
    for (i, (target, run)) in TARGETS.into_iter().enumerate() {
        let seeds: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, data)| data).collect();
        let mut rng = Rng::new(0x7e7e_u64 + i as u64);
        for n in 0..SMOKE_INPUTS {
            let data = mutate(&mut rng, &seeds);
            replay(target, run, &format!("generated input {n}: {data:?}"), &data);
        }
    }
}
