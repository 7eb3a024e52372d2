//! `amoeba man DIR` (what `cargo xtask man` runs): a roff page for the tool and one for every
//! visible command, with their options.

use std::process::Command;

#[test]
fn every_command_gets_a_manual_page_with_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .arg("man")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for command in [
        "inspect",
        "genotype",
        "convert",
        "export",
        "run",
        "verify",
        "classify",
        "eval",
        "eval-merge",
        "completions",
        "cache",
    ] {
        let page = std::fs::read_to_string(dir.path().join(format!("amoeba-{command}.1")))
            .unwrap_or_else(|e| panic!("amoeba-{command}.1: {e}"));
        assert!(
            page.starts_with(".ie") || page.contains(".TH"),
            "{command}: not roff"
        );
        // roff escapes every `-` of the name.
        let escaped = format!("amoeba-{command}").replace('-', "\\-");
        assert!(page.contains(&escaped), "{command}: named");
    }
    let main = std::fs::read_to_string(dir.path().join("amoeba.1")).unwrap();
    assert!(
        main.contains(".TH amoeba 1"),
        "{}",
        &main[..200.min(main.len())]
    );
    let run = std::fs::read_to_string(dir.path().join("amoeba-run.1")).unwrap();
    assert!(run.contains("precision"), "options are documented");
    assert!(
        !dir.path().join("amoeba-man.1").exists(),
        "the hidden command has no page"
    );
}
