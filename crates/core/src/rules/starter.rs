//! The starter rule pack, built into the binary so that segwatch works installed alone (no
//! `rules/` folder beside it) and `segwatch rules init` can write it out for editing.
//! `rules/` in the repository is the source; a test checks every file there is embedded here.

use std::path::PathBuf;

use super::{LoadErrors, RuleSet, load};

/// The starter pack's files, as shipped in `rules/`.
pub(super) const FILES: &[(&str, &str)] = &[
    (
        "rules/access.yaml",
        include_str!("../../../../rules/access.yaml"),
    ),
    (
        "rules/access_changes.yaml",
        include_str!("../../../../rules/access_changes.yaml"),
    ),
    (
        "rules/audit_trail.yaml",
        include_str!("../../../../rules/audit_trail.yaml"),
    ),
    (
        "rules/data_controls.yaml",
        include_str!("../../../../rules/data_controls.yaml"),
    ),
    (
        "rules/destinations.yaml",
        include_str!("../../../../rules/destinations.yaml"),
    ),
    (
        "rules/functions.yaml",
        include_str!("../../../../rules/functions.yaml"),
    ),
    (
        "rules/groups.yaml",
        include_str!("../../../../rules/groups.yaml"),
    ),
    (
        "rules/invites.yaml",
        include_str!("../../../../rules/invites.yaml"),
    ),
    (
        "rules/sources.yaml",
        include_str!("../../../../rules/sources.yaml"),
    ),
    (
        "rules/tracking-plans.yaml",
        include_str!("../../../../rules/tracking-plans.yaml"),
    ),
    (
        "rules/warehouses.yaml",
        include_str!("../../../../rules/warehouses.yaml"),
    ),
    (
        "rules/workspace.yaml",
        include_str!("../../../../rules/workspace.yaml"),
    ),
];

/// The starter pack's guide (`rules/README.md`: what each rule raises, what to edit first),
/// written out with the rule files but not a rule file itself.
const README: (&str, &str) = (
    "rules/README.md",
    include_str!("../../../../rules/README.md"),
);

/// One file of the starter pack as shipped in `rules/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StarterFile {
    /// Its name inside `rules/`, e.g. `access.yaml`.
    pub name: &'static str,
    /// Its exact text.
    pub text: &'static str,
}

/// Every file of the starter pack (the rule files in path order, then `README.md`), as
/// `segwatch rules init` writes them out.
pub fn starter_files() -> impl Iterator<Item = StarterFile> {
    FILES
        .iter()
        .chain(std::iter::once(&README))
        .map(|(path, text)| StarterFile {
            name: path.strip_prefix("rules/").unwrap_or(path),
            text,
        })
}

/// The built-in copy of the starter rule pack. Its rules name their files `rules/<file>.yaml`,
/// as if loaded from the repository's `rules/` folder, so messages read the same either way.
pub fn starter_pack() -> Result<RuleSet, LoadErrors> {
    load::load_sources(
        FILES
            .iter()
            .map(|(name, text)| (PathBuf::from(name), Ok(text.to_string())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rules init` writes these out: every file of `rules/`, byte for byte, and nothing else.
    #[test]
    fn starter_files_are_the_rules_folder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        let mut on_disk: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let text = std::fs::read_to_string(e.path()).unwrap();
                (e.file_name().to_string_lossy().into_owned(), text)
            })
            .collect();
        on_disk.sort();
        let mut embedded: Vec<(String, String)> = starter_files()
            .map(|f| (f.name.to_string(), f.text.to_string()))
            .collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn every_rule_file_is_embedded_and_loads() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
            .map(|n| format!("rules/{n}"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(embedded, on_disk, "add new rule files to FILES");
        let pack = starter_pack().unwrap_or_else(|e| panic!("{e}"));
        let from_disk = RuleSet::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pack.rules().len(), from_disk.rules().len());
    }
}
