//! Small helpers that write one metric family through prometheus-client's encoder,
//! so each collector reads as a list of series rather than encoder plumbing.
//!
//! A family is written even when it has no series yet, so `# HELP` and `# TYPE`
//! tell a reader (and `onebox top`) that it exists.

use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// A series' labels: fixed names, values from short fixed lists.
pub(crate) type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A family's series: each one's labels and value.
pub(crate) type Series<'a, V> = Vec<(Labels<'a>, V)>;

/// Buckets `(upper bound, count in that bucket alone)`, the sum and the count.
pub(crate) type HistogramValue = (Vec<(f64, u64)>, f64, u64);

/// What every writer returns: the encoder's error, if the scrape's buffer failed.
type Out = std::fmt::Result;

/// One family: its `# HELP`/`# TYPE` descriptor, then each series through `write`,
/// under its labels when it has any (an empty label set would print `{}`).
fn family<V>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: &[(Labels, V)],
    write: impl Fn(&mut MetricEncoder, &V) -> Out,
) -> Out {
    let mut metric = e.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        if labels.is_empty() {
            write(&mut metric, value)?;
        } else {
            write(&mut metric.encode_family(labels)?, value)?;
        }
    }
    Ok(())
}

/// A gauge family.
pub(crate) fn gauge<V: EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, V)],
) -> Out {
    family(e, name, help, MetricType::Gauge, series, |m, v| {
        m.encode_gauge(v)
    })
}

/// A histogram family.
pub(crate) fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, HistogramValue)],
) -> Out {
    family(
        e,
        name,
        help,
        MetricType::Histogram,
        series,
        |m, (buckets, sum, count)| m.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None),
    )
}

/// Counter families from a `(name, help, series)` table, so a collector's counters
/// read as a list of what it counts; `name` without the `_total` the encoder adds.
pub(crate) fn counters(e: &mut DescriptorEncoder, table: &[(&str, &str, Series<u64>)]) -> Out {
    for (name, help, series) in table {
        family(e, name, help, MetricType::Counter, series, |m, v| {
            m.encode_counter::<NoLabelSet, _, u64>(v, None)
        })?;
    }
    Ok(())
}

/// The one unlabelled series of a family.
pub(crate) fn one<V>(value: V) -> Series<'static, V> {
    vec![(vec![], value)]
}

/// Gauge families of one unlabelled series each, from a `(name, help, value)` table;
/// a `None` value (not known in this process) leaves its family out.
pub(crate) fn levels<V: EncodeGaugeValue + Copy>(
    e: &mut DescriptorEncoder,
    table: &[(&str, &str, Option<V>)],
) -> Out {
    for (name, help, value) in table {
        if let Some(value) = value {
            gauge(e, name, help, &[(vec![], *value)])?;
        }
    }
    Ok(())
}

/// A counter family of one unlabelled series with a fractional value (CPU seconds).
pub(crate) fn counter_f64(e: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> Out {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}
