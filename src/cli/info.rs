//! `docre info` and `docre selftest`: what the adapter is and offers, and whether every kernel
//! family still matches its reference on it.

use std::path::Path;

use crate::fsutil::check_writable;
use crate::gpu::Gpu;
use crate::Result;

pub fn info(json: bool) -> Result<()> {
    let gpu = Gpu::new()?;
    let r = gpu.report();
    let variants = crate::ops::chosen_variants(&gpu)?;
    if json {
        let mut v = serde_json::to_value(r).expect("adapter report serializes");
        v["subgroup_size"] = serde_json::json!(gpu.subgroup_size()?);
        v["environment"] = crate::settings::set().into_iter().map(|(k, x)| (k.to_string(), serde_json::Value::String(x))).collect::<serde_json::Map<_, _>>().into();
        v["kernels"] = variants.iter().map(|(f, k)| (f.to_string(), serde_json::Value::String(k.clone()))).collect::<serde_json::Map<_, _>>().into();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    println!("adapter      {}", r.name);
    println!("backend      {}", r.backend);
    println!("device type  {} (kernels tuned for {:?})", r.device_type, gpu.kind());
    println!("driver       {} {}", r.driver, r.driver_info);
    println!("limits       {} (DOCRE_LIMITS): storage binding {} MiB, buffer {} MiB, {} storage buffers/stage, workgroup memory {} KiB, {} invocations/workgroup, {} workgroups/dimension, {} bytes immediates",
        r.limits, r.max_storage_buffer_binding_size >> 20, r.max_buffer_size >> 20, r.max_storage_buffers_per_shader_stage, r.max_compute_workgroup_storage_size >> 10,
        r.max_compute_invocations_per_workgroup, r.max_compute_workgroups_per_dimension, r.max_immediate_size);
    println!("features     shader-f16 {}, timestamp queries {}, subgroups {}", yes(r.shader_f16), yes(r.timestamp_query), yes(r.subgroups));
    println!("parameters   {} (DOCRE_PARAMS)", r.params);
    for (family, variant) in variants {
        println!("kernel       {family:<10} {variant}");
    }
    for (name, value) in crate::settings::set() {
        println!("environment  {name}={value}");
    }
    Ok(())
}

pub fn selftest(only: Option<&str>, json: Option<&Path>) -> Result<()> {
    use crate::selftest::Outcome;
    if let Some(path) = json {
        check_writable(path, "--json")?;
    }
    let gpu = Gpu::new()?;
    let r = gpu.report();
    println!("adapter: {} ({}, {}), limits {}", r.name, r.backend, r.driver, r.limits);
    let rows = crate::selftest::run(&gpu, only, |row| {
        let (word, why) = match &row.outcome {
            Outcome::Pass => ("PASS", String::new()),
            Outcome::Fail(m) => ("FAIL", format!(": {m}")),
            Outcome::Skip(m) => ("SKIP", format!(": {m}")),
        };
        println!("{word}  {:<12} {:<40} {:>6.1} s{why}", row.family, row.variant, row.seconds);
    });
    let count = |f: fn(&Outcome) -> bool| rows.iter().filter(|r| f(&r.outcome)).count();
    let (pass, fail, skip) = (count(|o| *o == Outcome::Pass), count(|o| matches!(o, Outcome::Fail(_))), count(|o| matches!(o, Outcome::Skip(_))));
    println!("{pass} passed, {fail} failed, {skip} skipped");
    if let Some(path) = json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let (outcome, message) = match &r.outcome {
                    Outcome::Pass => ("pass", ""),
                    Outcome::Fail(m) => ("fail", m.as_str()),
                    Outcome::Skip(m) => ("skip", m.as_str()),
                };
                serde_json::json!({"family": r.family, "variant": r.variant, "outcome": outcome, "message": message, "seconds": r.seconds})
            })
            .collect();
        let doc = serde_json::json!({"adapter": gpu.report(), "checks": v});
        crate::fsutil::write_atomic(path, serde_json::to_string_pretty(&doc).expect("json").as_bytes())?;
    }
    if rows.is_empty() {
        return Err(crate::Error::Input(format!("--only {:?} matches no check", only.unwrap_or_default())));
    }
    if fail > 0 {
        return Err(crate::Error::SelfTest(format!("{fail} self-test check(s) failed on {}", r.name)));
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
