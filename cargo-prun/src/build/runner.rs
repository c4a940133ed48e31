//! The target's runner from cargo's config: what `cargo test` runs each test binary under
//! (qemu-user for a cross target, a wrapper that sets up a sandbox, ...), and so what prun runs
//! them under too, to list them and to run their tests.
//!
//! Cargo's rules (its `target_runner`): `target.<triple>.runner` wins, else the one
//! `target.'cfg(..)'.runner` whose expression the target's cfg matches (two is an error). Values
//! come from `--config`, then `CARGO_TARGET_<TRIPLE>_RUNNER`, then the `.cargo/config.toml`
//! files from the current directory up, then `$CARGO_HOME/config.toml`, the first that sets the
//! key winning. A value is a string split on whitespace or an array of strings; a program path
//! with a `/` is relative to the directory holding the `.cargo` directory it was set in (the
//! current directory for `--config` and the environment).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use cargo_metadata::cargo_platform::{Cfg, Platform};

/// A program the test binaries run under: `PROGRAM ARGS... BINARY BINARY_ARGS...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Runner {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    /// Where it was set (`--config`, an environment variable, a config file), for errors.
    pub(crate) source: String,
}

/// What is wrong with cargo's runner settings, or with finding out the target.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{set_in}: `target.'{key}'`: {message}")]
    BadCfg { set_in: String, key: String, message: String },
    #[error(
        "several `target.'cfg(..)'.runner` settings match {triple}: `{first}` ({first_in}) and \
         `{second}` ({second_in}), as cargo refuses too"
    )]
    SeveralMatch {
        triple: String,
        first: String,
        first_in: String,
        second: String,
        second_in: String,
    },
    #[error("{set_in}: `target.{key}.runner` is empty")]
    Empty { set_in: String, key: String },
    #[error("{set_in}: `target.{key}.runner` must be a string or strings")]
    NotStrings { set_in: String, key: String },
    #[error("{set_in}: `build.target` names several targets; prun runs one: give --target TRIPLE")]
    SeveralTargets { set_in: String },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("--config {0}: neither a KEY=VALUE line of TOML nor a file")]
    ConfigArg(String),
    #[error("cannot run rustc: {0}")]
    Rustc(std::io::Error),
    #[error("rustc -vV did not name the host triple")]
    NoHost,
    #[error("rustc --print cfg --target {triple}: {stderr}")]
    Cfg { triple: String, stderr: String },
}

/// One `target.KEY.runner` setting, in the order cargo would prefer it.
#[derive(Debug, Clone)]
struct Setting {
    /// A triple or a `cfg(..)` expression.
    key: String,
    value: Vec<String>,
    /// What a relative program path is relative to.
    base: PathBuf,
    source: String,
}

/// The runner for the build `build_args` describe, run from `cwd`; `None` when cargo's config
/// sets none (the common case costs no rustc call).
pub(crate) fn resolve(
    target: Option<&str>,
    cargo_config: &[String],
    cwd: &Path,
) -> Result<Option<Runner>, Error> {
    let Configs { tables, cli } = Configs::read(cargo_config, cwd)?;
    let mut settings = Vec::new();
    for (source, table, base) in &cli {
        settings.extend(settings_of(table, base, source)?);
    }
    let env_settings: Vec<Setting> = std::env::vars()
        .filter_map(|(name, value)| {
            let triple = name.strip_prefix("CARGO_TARGET_")?.strip_suffix("_RUNNER")?;
            Some(Setting {
                key: triple.to_owned(),
                value: value.split_whitespace().map(str::to_owned).collect(),
                base: cwd.to_owned(),
                source: format!("the environment variable {name}"),
            })
        })
        .collect();
    settings.extend(env_settings);
    for (path, table) in &tables {
        let base = path.parent().and_then(Path::parent).unwrap_or(cwd);
        settings.extend(settings_of(table, base, &path.display().to_string())?);
    }
    if settings.is_empty() {
        return Ok(None);
    }
    let triple = match target {
        Some(triple) => triple.to_owned(),
        None => build_target(&cli, &tables)?.map_or_else(host_triple, Ok)?,
    };
    let cfg = if settings.iter().any(|s| s.key.starts_with("cfg(")) {
        target_cfg(&triple)?
    } else {
        Vec::new()
    };
    choose(&settings, &triple, &cfg)
}

/// The triple the build is for: `--target`, else `CARGO_BUILD_TARGET` or `build.target` from
/// cargo's config, else the host's (`rustc -vV`).
pub(crate) fn target_triple(
    target: Option<&str>,
    cargo_config: &[String],
    cwd: &Path,
) -> Result<String, Error> {
    if let Some(triple) = target {
        return Ok(triple.to_owned());
    }
    let Configs { tables, cli } = Configs::read(cargo_config, cwd)?;
    build_target(&cli, &tables)?.map_or_else(host_triple, Ok)
}

/// Cargo's config as it applies in `cwd`: the files from there up and `$CARGO_HOME`'s
/// (closest first), and the `--config` values (last given first).
struct Configs {
    tables: Vec<(PathBuf, toml::Table)>,
    /// Where each came from, the table, and what a relative path in it is relative to.
    cli: Vec<(String, toml::Table, PathBuf)>,
}

impl Configs {
    fn read(cargo_config: &[String], cwd: &Path) -> Result<Configs, Error> {
        let tables = config_files(cwd)
            .iter()
            .map(|path| read_table(path).map(|table| (path.clone(), table)))
            .collect::<Result<Vec<_>, Error>>()?;
        let cli = cargo_config
            .iter()
            .rev()
            .map(|arg| cli_table(arg, cwd))
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Configs { tables, cli })
    }
}

/// Cargo's choice among the settings (closest first): the triple's own, else the one matching
/// `cfg(..)` key (the closest setting of each key counts).
fn choose(settings: &[Setting], triple: &str, cfg: &[Cfg]) -> Result<Option<Runner>, Error> {
    let env_key = env_key(triple);
    let own = settings.iter().find(|s| s.key == triple || s.key == env_key);
    let setting = match own {
        Some(setting) => setting,
        None => {
            let mut seen = std::collections::HashSet::new();
            let mut matching = Vec::new();
            for setting in settings.iter().filter(|s| s.key.starts_with("cfg(")) {
                if !seen.insert(setting.key.as_str()) {
                    continue;
                }
                let platform = Platform::from_str(&setting.key).map_err(|err| Error::BadCfg {
                    set_in: setting.source.clone(),
                    key: setting.key.clone(),
                    message: err.to_string(),
                })?;
                if platform.matches(triple, cfg) {
                    matching.push(setting);
                }
            }
            match matching[..] {
                [] => return Ok(None),
                [one] => one,
                [a, b, ..] => {
                    return Err(Error::SeveralMatch {
                        triple: triple.to_owned(),
                        first: a.key.clone(),
                        first_in: a.source.clone(),
                        second: b.key.clone(),
                        second_in: b.source.clone(),
                    });
                }
            }
        }
    };
    let Some((program, args)) = setting.value.split_first() else {
        return Err(Error::Empty { set_in: setting.source.clone(), key: setting.key.clone() });
    };
    let program =
        if program.contains('/') { setting.base.join(program) } else { PathBuf::from(program) };
    Ok(Some(Runner { program, args: args.to_vec(), source: setting.source.clone() }))
}

/// `x86_64-unknown-linux-gnu` → `X86_64_UNKNOWN_LINUX_GNU`, as cargo spells a triple in an
/// environment variable's name.
fn env_key(triple: &str) -> String {
    triple.to_uppercase().replace(['-', '.'], "_")
}

/// The `target.*.runner` settings of one config table.
fn settings_of(table: &toml::Table, base: &Path, source: &str) -> Result<Vec<Setting>, Error> {
    let Some(targets) = table.get("target").and_then(toml::Value::as_table) else {
        return Ok(Vec::new());
    };
    let mut settings = Vec::new();
    for (key, target) in targets {
        let Some(runner) = target.get("runner") else { continue };
        let not_strings = || Error::NotStrings { set_in: source.to_owned(), key: key.clone() };
        let value = match runner {
            toml::Value::String(line) => line.split_whitespace().map(str::to_owned).collect(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(not_strings)?,
            _ => return Err(not_strings()),
        };
        settings.push(Setting {
            key: key.clone(),
            value,
            base: base.to_owned(),
            source: source.to_owned(),
        });
    }
    Ok(settings)
}

/// `build.target` of the closest config that sets it (a string; cargo's array of several
/// targets is not one prun can run).
fn build_target(
    cli: &[(String, toml::Table, PathBuf)],
    files: &[(PathBuf, toml::Table)],
) -> Result<Option<String>, Error> {
    if let Ok(target) = std::env::var("CARGO_BUILD_TARGET") {
        return Ok(Some(target));
    }
    let tables = cli
        .iter()
        .map(|(source, table, _)| (source.clone(), table))
        .chain(files.iter().map(|(path, table)| (path.display().to_string(), table)));
    for (source, table) in tables {
        match table.get("build").and_then(|build| build.get("target")) {
            None => continue,
            Some(toml::Value::String(target)) => return Ok(Some(target.clone())),
            Some(toml::Value::Array(targets)) if targets.len() == 1 => {
                return Ok(targets[0].as_str().map(str::to_owned));
            }
            Some(_) => return Err(Error::SeveralTargets { set_in: source }),
        }
    }
    Ok(None)
}

/// The config files cargo reads from `cwd`, closest first.
fn config_files(cwd: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut seen_home = false;
    let home = cargo_home();
    for dir in cwd.ancestors() {
        let dot_cargo = dir.join(".cargo");
        seen_home |= home.as_deref() == Some(dot_cargo.as_path());
        files.extend(config_in(&dot_cargo));
    }
    if !seen_home && let Some(home) = home {
        files.extend(config_in(&home));
    }
    files
}

/// `DIR/config.toml`, else the older `DIR/config`.
fn config_in(dir: &Path) -> Option<PathBuf> {
    ["config.toml", "config"].iter().map(|name| dir.join(name)).find(|path| path.is_file())
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

fn read_table(path: &Path) -> Result<toml::Table, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::Read { path: path.to_owned(), source })?;
    toml::from_str(&text).map_err(|source| Error::Parse { path: path.to_owned(), source })
}

/// A `--config` argument: a `KEY=VALUE` TOML line, else a config file's path.
fn cli_table(arg: &str, cwd: &Path) -> Result<(String, toml::Table, PathBuf), Error> {
    if let Ok(table) = toml::from_str::<toml::Table>(arg) {
        return Ok((format!("--config {arg}"), table, cwd.to_owned()));
    }
    let path = cwd.join(arg);
    if path.is_file() {
        let base = path.parent().and_then(Path::parent).unwrap_or(cwd).to_owned();
        return Ok((format!("--config {arg}"), read_table(&path)?, base));
    }
    Err(Error::ConfigArg(arg.to_owned()))
}

fn rustc() -> Command {
    Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
}

fn host_triple() -> Result<String, Error> {
    let out = rustc().arg("-vV").output().map_err(Error::Rustc)?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .ok_or(Error::NoHost)
}

/// The target's cfg, as rustc prints it.
fn target_cfg(triple: &str) -> Result<Vec<Cfg>, Error> {
    let out =
        rustc().args(["--print", "cfg", "--target", triple]).output().map_err(Error::Rustc)?;
    if !out.status.success() {
        return Err(Error::Cfg {
            triple: triple.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| Cfg::from_str(l).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str, value: &[&str], source: &str) -> Setting {
        Setting {
            key: key.to_owned(),
            value: value.iter().map(|v| (*v).to_owned()).collect(),
            base: PathBuf::from("/ws"),
            source: source.to_owned(),
        }
    }

    fn linux_cfg() -> Vec<Cfg> {
        ["unix", "target_os=\"linux\"", "target_arch=\"aarch64\""]
            .iter()
            .map(|c| Cfg::from_str(c).unwrap())
            .collect()
    }

    const TRIPLE: &str = "aarch64-unknown-linux-gnu";

    #[test]
    fn the_triples_own_runner_wins_over_a_matching_cfg() {
        let settings = [
            setting("cfg(unix)", &["wrap"], "a"),
            setting(TRIPLE, &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"], "b"),
        ];
        let runner = choose(&settings, TRIPLE, &linux_cfg()).unwrap().unwrap();
        assert_eq!(runner.program, PathBuf::from("qemu-aarch64"));
        assert_eq!(runner.args, ["-L", "/usr/aarch64-linux-gnu"]);
        assert_eq!(runner.source, "b");
        // The environment's spelling of the triple counts as the triple.
        let settings = [setting("AARCH64_UNKNOWN_LINUX_GNU", &["env-runner"], "env")];
        assert_eq!(choose(&settings, TRIPLE, &[]).unwrap().unwrap().source, "env");
    }

    #[test]
    fn a_cfg_runner_applies_when_its_expression_matches() {
        let settings = [
            setting("cfg(windows)", &["wine"], "a"),
            setting("cfg(all(unix, target_arch = \"aarch64\"))", &["./tools/run"], "b"),
        ];
        let runner = choose(&settings, TRIPLE, &linux_cfg()).unwrap().unwrap();
        assert_eq!(runner.program, PathBuf::from("/ws/./tools/run"), "relative to its base");
        assert_eq!(choose(&settings[..1], TRIPLE, &linux_cfg()).unwrap(), None);
    }

    #[test]
    fn two_matching_cfg_runners_are_an_error_naming_both_but_one_key_set_twice_is_not() {
        let settings = [
            setting("cfg(unix)", &["a"], "near"),
            setting("cfg(unix)", &["b"], "far"),
            setting("cfg(target_os = \"linux\")", &["c"], "other"),
        ];
        let err = choose(&settings, TRIPLE, &linux_cfg()).unwrap_err().to_string();
        assert!(err.contains("cfg(unix)") && err.contains("other"), "{err}");
        let runner = choose(&settings[..2], TRIPLE, &linux_cfg()).unwrap().unwrap();
        assert_eq!(runner.source, "near", "the closest setting of a key wins");
    }

    #[test]
    fn config_values_are_strings_or_arrays_and_anything_else_is_named() {
        let table: toml::Table = toml::from_str(
            "[target.x]\nrunner = \"sh -c\"\n[target.y]\nrunner = [\"a b\", \"c\"]\n",
        )
        .unwrap();
        let settings = settings_of(&table, Path::new("/"), "f").unwrap();
        assert_eq!(settings[0].value, ["sh", "-c"]);
        assert_eq!(settings[1].value, ["a b", "c"]);
        let table: toml::Table = toml::from_str("[target.x]\nrunner = 3\n").unwrap();
        let err = settings_of(&table, Path::new("/"), "the file").unwrap_err().to_string();
        assert!(err.contains("the file") && err.contains("target.x.runner"), "{err}");
    }

    #[test]
    fn config_files_and_command_line_values_are_found_closest_first() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("ws/member");
        std::fs::create_dir_all(inner.join(".cargo")).unwrap();
        std::fs::create_dir_all(dir.path().join("ws/.cargo")).unwrap();
        std::fs::write(inner.join(".cargo/config.toml"), "[target.t]\nrunner = \"near\"\n")
            .unwrap();
        std::fs::write(dir.path().join("ws/.cargo/config"), "[target.t]\nrunner = \"far\"\n")
            .unwrap();
        let files = config_files(&inner);
        assert_eq!(files[0], inner.join(".cargo/config.toml"));
        assert_eq!(files[1], dir.path().join("ws/.cargo/config"));
        let runner = resolve(Some("t"), &[], &inner).unwrap().unwrap();
        assert_eq!(runner.program, PathBuf::from("near"));
        // --config beats the files, and the last --config beats the ones before it.
        let args = ["target.t.runner = \"first\"".to_owned(), "target.t.runner=\"cli\"".to_owned()];
        let runner = resolve(Some("t"), &args, &inner).unwrap().unwrap();
        assert_eq!(runner.program, PathBuf::from("cli"));
        assert_eq!(runner.source, "--config target.t.runner=\"cli\"");
        let err =
            resolve(Some("t"), &["no such thing".to_owned()], &inner).unwrap_err().to_string();
        assert!(err.contains("--config no such thing"), "{err}");
    }
}
