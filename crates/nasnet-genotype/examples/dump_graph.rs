//! Prints the nodes of a SavedModel's inference graph (tags `{}`): name, op, inputs and attrs,
//! skipping variable bookkeeping. A tool for learning a module's naming patterns.
//! Usage: `cargo run -p nasnet-genotype --example dump_graph -- saved_model.pb [name-filter]`.

use std::error::Error;
use tf_proto::tensorflow::attr_value::Value;
use tf_proto::tensorflow::{AttrValue, SavedModel, TensorShapeProto};
use tf_proto::Message;

fn shape(s: &TensorShapeProto) -> String {
    let dims: Vec<String> = s.dim.iter().map(|d| d.size.to_string()).collect();
    format!("[{}]", dims.join(","))
}

fn attr(v: &AttrValue) -> String {
    match &v.value {
        Some(Value::List(l)) if !l.i.is_empty() => format!("{:?}", l.i),
        Some(Value::List(l)) if !l.shape.is_empty() => {
            l.shape.iter().map(shape).collect::<Vec<_>>().join(";")
        }
        Some(Value::List(l)) if !l.s.is_empty() => {
            l.s.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(",")
        }
        Some(Value::S(s)) => String::from_utf8_lossy(s).into_owned(),
        Some(Value::I(i)) => i.to_string(),
        Some(Value::F(f)) => format!("{f:e}"),
        Some(Value::B(b)) => b.to_string(),
        Some(Value::Type(t)) => format!("t{t}"),
        Some(Value::Shape(s)) => shape(s),
        Some(Value::Tensor(t)) => format!(
            "tensor(f{:?} i{:?} {}B)",
            t.float_val,
            t.int_val,
            t.tensor_content.len()
        ),
        other => format!("{other:?}"),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: dump_graph saved_model.pb [filter]")?;
    let filter = args.get(2).cloned().unwrap_or_default();
    let bytes = std::fs::read(path)?;
    let model = SavedModel::decode(bytes.as_slice())?;
    let skip = ["ReadVariableOp", "VarIsInitializedOp", "AssignVariableOp"];
    for mg in &model.meta_graphs {
        let tags = mg
            .meta_info_def
            .as_ref()
            .map(|m| m.tags.clone())
            .unwrap_or_default();
        let Some(graph) = mg.graph_def.as_ref().filter(|_| tags.is_empty()) else {
            continue;
        };
        for node in graph.node.iter().filter(|n| n.name.contains(&filter)) {
            if skip.contains(&node.op.as_str()) || node.name.contains("Regularizer") {
                continue;
            }
            let mut attrs: Vec<_> = node
                .attr
                .iter()
                .map(|(k, v)| format!("{k}={}", attr(v)))
                .collect();
            attrs.sort();
            println!(
                "{} | {} | {} | {}",
                node.name,
                node.op,
                node.input.join(","),
                attrs.join(" ")
            );
        }
    }
    Ok(())
}
