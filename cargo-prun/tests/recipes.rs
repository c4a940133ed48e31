//! The CI recipes in `ci-recipes/` are what their CI reads: each is parsed as YAML and checked
//! against the keys its CI documents (no validator for these CIs installs offline), and its jobs
//! fit together: a job another needs exists, the shards are as many as the merge expects, the
//! archive the build job makes is the one the shards run. The `cargo prun` command lines
//! themselves are parsed by cargo-prun's own flag parser (`the_ci_recipes_use_real_flags`), and
//! are those `tests/archive.rs` runs.

use std::collections::BTreeSet;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

fn load(name: &str) -> Vec<Yaml> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci-recipes").join(name);
    let text = std::fs::read_to_string(path).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|err| panic!("{name} is not YAML: {err}"))
}

fn keys(yaml: &Yaml) -> Vec<&str> {
    let hash = yaml.as_hash().unwrap_or_else(|| panic!("a mapping, not {yaml:?}"));
    hash.keys().map(|key| key.as_str().unwrap_or_else(|| panic!("a key {key:?}"))).collect()
}

/// `yaml` is a mapping whose keys are all in `allowed`.
fn only_keys(what: &str, yaml: &Yaml, allowed: &[&str]) {
    for key in keys(yaml) {
        assert!(allowed.contains(&key), "{what}: `{key}` is not a key its CI knows");
    }
}

fn strings(yaml: &Yaml) -> Vec<&str> {
    match yaml {
        Yaml::String(one) => vec![one.as_str()],
        Yaml::Array(many) => many.iter().filter_map(Yaml::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Every recipe runs the shards from the archive as the end-to-end test does, and reruns what a
/// lost shard did not run.
fn runs_like_the_end_to_end_test(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci-recipes").join(name);
    let text = std::fs::read_to_string(path).unwrap();
    for needed in ["--archive-file tests.tar.zst --workspace-remap", "--rerun-failed merged.json"] {
        assert!(text.contains(needed), "{name}: {needed}");
    }
}

#[test]
fn the_github_actions_workflow_has_only_keys_actions_knows() {
    let name = "github-actions.yml";
    runs_like_the_end_to_end_test(name);
    let workflow = &load(name)[0];
    let top = ["name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"];
    only_keys(name, workflow, &top);
    let jobs = &workflow["jobs"];
    let job_keys = [
        "name",
        "permissions",
        "needs",
        "if",
        "runs-on",
        "environment",
        "concurrency",
        "outputs",
        "env",
        "defaults",
        "steps",
        "timeout-minutes",
        "strategy",
        "continue-on-error",
        "container",
        "services",
        "uses",
        "with",
        "secrets",
    ];
    let step_keys = [
        "id",
        "if",
        "name",
        "uses",
        "run",
        "shell",
        "with",
        "env",
        "continue-on-error",
        "timeout-minutes",
        "working-directory",
    ];
    let names: BTreeSet<&str> = keys(jobs).into_iter().collect();
    let mut uploaded = BTreeSet::new();
    let mut downloaded = BTreeSet::new();
    for job in &names {
        let body = &jobs[*job];
        only_keys(&format!("{name}: jobs.{job}"), body, &job_keys);
        assert!(body["runs-on"].as_str().is_some(), "{job}: runs-on");
        for needed in strings(&body["needs"]) {
            assert!(names.contains(needed), "{job} needs {needed}, which is not a job");
        }
        for step in body["steps"].as_vec().unwrap() {
            only_keys(&format!("{name}: a step of {job}"), step, &step_keys);
            let (uses, run) = (step["uses"].as_str(), step["run"].as_str());
            assert!(uses.is_some() != run.is_some(), "{job}: a step uses an action or runs");
            if let Some(action) = uses {
                assert!(action.contains('/') && action.contains('@'), "{job}: `{action}`");
                let with = &step["with"];
                let artifact = with["name"].as_str().or(with["pattern"].as_str());
                if action.starts_with("actions/upload-artifact") {
                    uploaded.insert(artifact.unwrap().replace("${{ matrix.shard }}", "*"));
                } else if action.starts_with("actions/download-artifact") {
                    downloaded.insert(artifact.unwrap().to_owned());
                }
            }
        }
    }
    // What the shards and the merge download, a job uploaded.
    for artifact in &downloaded {
        assert!(uploaded.contains(artifact), "{artifact} is downloaded but never uploaded");
    }
    let shards = jobs["shard"]["strategy"]["matrix"]["shard"].as_vec().unwrap();
    assert_eq!(shards.len(), 4);
    assert_eq!(jobs["shard"]["env"]["PRUN_SHARD"].as_str(), Some("${{ matrix.shard }}/4"));
}

#[test]
fn the_gitlab_pipeline_has_only_keys_gitlab_knows() {
    let name = "gitlab-ci.yml";
    runs_like_the_end_to_end_test(name);
    let pipeline = &load(name)[0];
    let global = [
        "default",
        "include",
        "stages",
        "variables",
        "workflow",
        "image",
        "services",
        "cache",
        "before_script",
        "after_script",
    ];
    let job_keys = [
        "stage",
        "image",
        "script",
        "needs",
        "parallel",
        "artifacts",
        "cache",
        "when",
        "rules",
        "variables",
        "before_script",
        "after_script",
        "tags",
        "allow_failure",
        "timeout",
        "retry",
        "services",
        "dependencies",
        "environment",
        "interruptible",
    ];
    let stages = strings(&pipeline["stages"]);
    let jobs: Vec<&str> = keys(pipeline).into_iter().filter(|key| !global.contains(key)).collect();
    for job in &jobs {
        let body = &pipeline[*job];
        only_keys(&format!("{name}: {job}"), body, &job_keys);
        assert!(stages.contains(&body["stage"].as_str().unwrap()), "{job}: its stage");
        assert!(!strings(&body["script"]).is_empty(), "{job}: a script of commands");
        for needed in body["needs"].as_vec().into_iter().flatten() {
            let needed = needed.as_str().or(needed["job"].as_str()).unwrap();
            assert!(jobs.contains(&needed), "{job} needs {needed}, which is not a job");
        }
        if let Some(when) = body["when"].as_str() {
            let known = ["on_success", "on_failure", "always", "manual", "delayed", "never"];
            assert!(known.contains(&when), "{job}: when: {when}");
        }
        if !body["artifacts"].is_badvalue() {
            let artifacts =
                ["paths", "when", "expire_in", "reports", "name", "untracked", "exclude"];
            only_keys(&format!("{name}: {job}.artifacts"), &body["artifacts"], &artifacts);
        }
        if !body["cache"].is_badvalue() {
            let cache = ["key", "paths", "policy", "when", "untracked", "fallback_keys"];
            only_keys(&format!("{name}: {job}.cache"), &body["cache"], &cache);
            let policy = body["cache"]["policy"].as_str().unwrap_or("pull-push");
            assert!(["pull", "push", "pull-push"].contains(&policy), "{job}: {policy}");
        }
    }
    // `parallel: 4` is what sets CI_NODE_INDEX and CI_NODE_TOTAL, which `timing:auto` reads.
    assert_eq!(pipeline["shard"]["parallel"].as_i64(), Some(4));
    assert!(pipeline["merge"]["artifacts"]["reports"]["junit"].as_str().is_some());
}

#[test]
fn the_codebuild_buildspec_is_a_batch_build_graph() {
    let name = "codebuild-buildspec.yml";
    runs_like_the_end_to_end_test(name);
    let spec = &load(name)[0];
    let top =
        ["version", "run-as", "env", "proxy", "batch", "phases", "reports", "artifacts", "cache"];
    only_keys(name, spec, &top);
    assert_eq!(spec["version"], Yaml::Real("0.2".to_owned()));
    only_keys("batch", &spec["batch"], &["fast-fail", "build-graph", "build-list", "build-matrix"]);
    assert_eq!(spec["batch"]["fast-fail"].as_bool(), Some(true));
    let graph = spec["batch"]["build-graph"].as_vec().unwrap();
    let entry_keys =
        ["identifier", "buildspec", "env", "debug-session", "depend-on", "ignore-failure"];
    let ids: Vec<&str> = graph.iter().map(|entry| entry["identifier"].as_str().unwrap()).collect();
    for entry in graph {
        let id = entry["identifier"].as_str().unwrap();
        only_keys(&format!("{name}: build {id}"), entry, &entry_keys);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{id}");
        for needed in strings(&entry["depend-on"]) {
            assert!(ids.contains(&needed), "{id} depends on {needed}, which is not a build");
        }
        let env = ["variables", "compute-type", "image", "privileged-mode", "type", "fleet"];
        only_keys(&format!("{name}: build {id} env"), &entry["env"], &env);
    }
    // The shards depend on the build, the merge on every shard.
    let shards: Vec<&Yaml> =
        graph.iter().filter(|e| e["identifier"].as_str().unwrap().starts_with("shard_")).collect();
    assert_eq!(shards.len(), 4);
    assert!(shards.iter().all(|shard| strings(&shard["depend-on"]) == ["build"]));
    let merge = graph.iter().find(|e| e["identifier"].as_str() == Some("merge")).unwrap();
    assert_eq!(strings(&merge["depend-on"]).len(), 4);
    only_keys("phases", &spec["phases"], &["install", "pre_build", "build", "post_build"]);
    for phase in keys(&spec["phases"]) {
        assert!(!strings(&spec["phases"][phase]["commands"]).is_empty(), "{phase}: commands");
    }
    for group in keys(&spec["reports"]) {
        let format = spec["reports"][group]["file-format"].as_str().unwrap();
        assert!(
            ["JUNITXML", "CUCUMBERJSON", "NUNITXML", "NUNIT3XML", "TESTNGXML"].contains(&format)
        );
    }
}

#[test]
fn the_kubernetes_jobs_are_an_indexed_job_and_its_merge() {
    let name = "kubernetes-indexed-job.yml";
    runs_like_the_end_to_end_test(name);
    let documents = load(name);
    assert_eq!(documents.len(), 2, "the shards' Job and the merge's");
    let spec_keys = [
        "completionMode",
        "completions",
        "parallelism",
        "backoffLimit",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
        "template",
        "podFailurePolicy",
        "suspend",
        "successPolicy",
        "podReplacementPolicy",
    ];
    for job in &documents {
        only_keys(name, job, &["apiVersion", "kind", "metadata", "spec"]);
        assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
        assert_eq!(job["kind"].as_str(), Some("Job"));
        assert!(job["metadata"]["name"].as_str().is_some());
        only_keys(&format!("{name}: spec"), &job["spec"], &spec_keys);
        let pod = &job["spec"]["template"]["spec"];
        // A Job's pods may not restart Always.
        assert!(["Never", "OnFailure"].contains(&pod["restartPolicy"].as_str().unwrap()));
        let volumes: Vec<&str> =
            pod["volumes"].as_vec().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
        for container in pod["containers"].as_vec().unwrap() {
            for key in ["name", "image", "command"] {
                assert!(!container[key].is_badvalue(), "a container has {key}");
            }
            for mount in container["volumeMounts"].as_vec().unwrap() {
                assert!(volumes.contains(&mount["name"].as_str().unwrap()), "{mount:?}");
            }
        }
    }
    let shards = &documents[0]["spec"];
    assert_eq!(shards["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(shards["completions"], shards["parallelism"]);
    let container = &shards["template"]["spec"]["containers"][0];
    let total = container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|var| var["name"].as_str() == Some("PRUN_SHARD_TOTAL"))
        .and_then(|var| var["value"].as_str()?.parse::<i64>().ok());
    assert_eq!(total, shards["completions"].as_i64(), "PRUN_SHARD_TOTAL is the completions");
}
