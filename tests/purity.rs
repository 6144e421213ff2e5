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
