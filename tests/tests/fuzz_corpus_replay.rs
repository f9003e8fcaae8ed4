//! Replays every fuzz corpus (`tests/fuzz/corpus/<target>/`) through the same
//! parse functions the fuzz targets call, so inputs that once crashed a parser
//! (kept in the corpora as regression inputs) are checked on every test run.
//! Fuzzing itself: `cargo +nightly fuzz run <target> --fuzz-dir tests/fuzz`.

#[path = "../fuzz/parsers.rs"]
mod parsers;

use std::path::Path;

#[test]
fn every_fuzz_corpus_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let t0 = std::time::Instant::now();
    let mut total = 0;
    for (target, parse) in parsers::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(
            files.len() >= 5,
            "corpus `{target}` has only {} inputs",
            files.len()
        );
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let outcome = std::panic::catch_unwind(|| parse(&data));
            assert!(outcome.is_ok(), "{target}: {} panics", f.display());
        }
        eprintln!("{target}: {} inputs", files.len());
        total += files.len();
    }
    eprintln!(
        "replayed {total} corpus inputs in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
}
