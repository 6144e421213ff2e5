//! `make purity` must catch I/O, clocks and HashMap in pure modules (and pass on the tree).

use std::path::Path;
use std::process::Command;

fn run_on(root: &Path) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("cross/purity.sh");
    Command::new("sh").arg(script).arg(root).output().expect("run purity.sh")
}

#[test]
fn purity_passes_on_the_tree() {
    let out = run_on(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn purity_catches_each_kind_of_violation() {
    let violations = [
        "let t = std::time::Instant::now();",
        "let f = std::fs::read(\"x\");",
        "use std::collections::HashMap;",
        "let s = std::net::TcpStream::connect(\"127.0.0.1:1\");",
        "let c = std::process::Command::new(\"ssh\");",
        "let w = std::time::SystemTime::now();",
        "let x = crate::shell::files::read_state();",
        "use crate::sys::clock;",
    ];
    for (i, line) in violations.iter().enumerate() {
        let dir = std::env::temp_dir().join(format!("wanctl-purity-{}-{i}", std::process::id()));
        let engine = dir.join("src/engine");
        std::fs::create_dir_all(&engine).expect("mkdir");
        std::fs::write(engine.join("bad.rs"), format!("//! planted\nfn f() {{ {line} }}\n")).expect("write");
        let out = run_on(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!out.status.success(), "not caught: {line}");
    }
}

/// Issue 17: a renamed import passes a grep, so clippy.toml's disallowed types and methods
/// are the compiler-checked half. A tiny crate with the project's clippy.toml and planted
/// renamed uses must fail `cargo clippy -D warnings`.
#[test]
fn clippy_catches_renamed_imports_in_pure_code() {
    let dir = std::env::temp_dir().join(format!("wanctl-purity-clippy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).expect("mkdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("clippy.toml"), dir.join("clippy.toml")).expect("clippy.toml");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"planted\"\nversion = \"0.0.0\"\nedition = \"2024\"\n[workspace]\n",
    )
    .expect("Cargo.toml");
    let planted = [
        ("renamed Instant", "use std::time::{Instant as Clock};\npub fn f() -> Clock { Clock::now() }\n"),
        (
            "grouped fs and thread",
            "use std::{fs, thread};\npub fn f() { let _ = fs::read(\"x\"); thread::sleep(std::time::Duration::ZERO); }\n",
        ),
        (
            "aliased HashMap",
            "use std::collections::HashMap as Map;\npub fn f() -> Map<u8, u8> { Map::new() }\n",
        ),
    ];
    let target = std::env::temp_dir().join("wanctl-purity-clippy-target");
    for (name, code) in planted {
        std::fs::write(dir.join("src/lib.rs"), code).expect("lib.rs");
        let out = Command::new("cargo")
            .args(["clippy", "--quiet", "--offline", "--", "-D", "warnings"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("cargo clippy");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && text.contains("disallowed"), "{name} not caught:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
