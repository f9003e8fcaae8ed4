//! The documented bundling command (`plugins/bundle.sh`) produces a CLAP file
//! and a VST3 bundle with the right layout, and the VST3 library exports a
//! working `GetPluginFactory`.

mod common;

use std::fs::File;
use std::process::Command;

use common::*;

#[test]
fn bundle_script_makes_clap_and_vst3_with_the_right_layout() {
    if !cfg!(target_os = "linux") {
        println!("skipped: the layout check is written for Linux bundles");
        return;
    }
    let dir = test_target_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let lock = File::create(dir.join("build.lock")).unwrap();
    lock.lock().unwrap();
    let out = Command::new("sh")
        .arg(workspace().join("plugins/bundle.sh"))
        .env("CARGO_TARGET_DIR", &dir)
        .output()
        .expect("run plugins/bundle.sh");
    lock.unlock().unwrap();
    assert!(
        out.status.success(),
        "bundle.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bundled = dir.join("bundled");
    let clap = bundled.join("Antiphon.clap");
    let vst3 = bundled
        .join("Antiphon.vst3/Contents")
        .join(format!("{}-linux", std::env::consts::ARCH))
        .join("Antiphon.so");
    assert!(clap.is_file(), "missing {}", clap.display());
    assert!(vst3.is_file(), "missing {}", vst3.display());
    println!(
        "bundle sizes: Antiphon.clap {} bytes, Antiphon.vst3 {} bytes (debug)",
        clap.metadata().unwrap().len(),
        vst3.metadata().unwrap().len()
    );

    // SAFETY: our own freshly built library; the VST3 factory entry point
    // takes no arguments and returns an IPluginFactory pointer.
    unsafe {
        let lib = libloading::Library::new(&vst3).expect("dlopen the VST3 library");
        let factory: libloading::Symbol<unsafe extern "system" fn() -> *mut std::ffi::c_void> = lib
            .get(b"GetPluginFactory\0")
            .expect("VST3 library exports GetPluginFactory");
        assert!(!factory().is_null(), "GetPluginFactory returned null");
        let clap_lib = libloading::Library::new(&clap).expect("dlopen the CLAP file");
        clap_lib
            .get::<*const std::ffi::c_void>(b"clap_entry\0")
            .expect("CLAP file exports clap_entry");
    }
}
