//! The comparison as one self-contained HTML page: the summaries side by side, the payout
//! distribution under A and B (a histogram over logarithmic bins), the Lorenz curves, the top
//! gainers and losers, the capped actors, and the manifests and digests that tie the page to
//! the signed runs. Inline SVG and one inline stylesheet: no script, no image, no font, no
//! request of any kind, so it reads the same offline, from a file or from the node.
//!
//! It lives in core, beside the JSON body, because core's service renders every HTTP answer
//! (`POST …/compare?format=html`) and the CLI writes the very same bytes; it is pure string
//! building from integers (coordinates included), so the same comparison gives the same page
//! on every machine.
//!
//! Actor ids are attacker-controlled text (any printable ASCII, `<`, `&`, quotes included):
//! every piece of text goes through [`escape`], and the page's own Content-Security-Policy
//! (a `<meta>`, so it holds for a saved file too) allows nothing but its one stylesheet, pinned
//! by hash: no script can run even if some text escaped.

use std::fmt::Write as _;

use base64ct::{Base64, Encoding as _};
use sha2::{Digest as _, Sha256};

use super::json::COMPARE_SCHEMA;
use super::{Comparison, Ratio, Row, Side};
use crate::manifest::Manifest;

/// The one stylesheet, pinned by its hash in the page's Content-Security-Policy.
const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;\
max-width:1100px;padding:0 1rem;color:#1d2330;background:#fff}\
h1{font-size:1.6rem;margin:0 0 .3rem}\
h2{font-size:1.15rem;margin:2.2rem 0 .6rem;border-bottom:1px solid #dde2ea;padding-bottom:.3rem}\
p{margin:.3rem 0}.muted{color:#5a6475}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em;word-break:break-all}\
table{border-collapse:collapse;width:100%;margin:.4rem 0}\
th,td{padding:.3rem .6rem;border-bottom:1px solid #eef1f5;text-align:left;vertical-align:top}\
th{font-weight:600;background:#f7f8fa}\
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.a{color:#1d4ed8}.b{color:#b45309}.up{color:#15803d}.down{color:#b91c1c}\
.tag{display:inline-block;white-space:nowrap;font-size:.75em;padding:0 .4em;border-radius:.3em;\
background:#eef1f5;margin:0 .25em .1em 0}\
.charts{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}\
figure{margin:0;display:table}figcaption{display:table-caption;caption-side:bottom;color:#5a6475;font-size:.9em}\
svg{max-width:100%;height:auto}svg text{font:11px system-ui,sans-serif;fill:#5a6475}";

/// Colours of the two sides (SVG presentation attributes, which the policy allows).
const COLOUR_A: &str = "#1d4ed8";
const COLOUR_B: &str = "#d97706";

/// Segments of a Lorenz curve at most (a curve is convex: a few hundred points draw it).
const LORENZ_SEGMENTS_MAX: usize = 256;

/// The page's Content-Security-Policy: nothing may load or run; the one stylesheet is pinned
/// by its SHA-256.
pub fn content_security_policy() -> String {
    let hash = Base64::encode_string(&Sha256::digest(STYLE.as_bytes()));
    format!("default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'")
}

/// `s` with `&`, `<`, `>`, `"` and `'` replaced by character references: safe as text and as
/// a quoted attribute value, in HTML and in inline SVG.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped(&mut out, s);
    out
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The report of `comparison`, each table holding at most `top` rows.
pub fn render(comparison: &Comparison, top: usize) -> String {
    let (a, b) = (comparison.a(), comparison.b());
    let m = a.run().manifest();
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(
        out,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
        content_security_policy()
    );
    out.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>Policy what-if: epoch {}</title>", escape(&m.epoch));
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");

    let _ = writeln!(
        out,
        "<h1>Policy what-if: <span class=\"a\">{}</span> → <span class=\"b\">{}</span></h1>",
        escape(&a.run().manifest().policy_id),
        escape(&b.run().manifest().policy_id)
    );
    let _ = writeln!(
        out,
        "<p class=\"muted\">Epoch <code>{}</code> · tenant <code>{}</code> · inputs <code>{}</code> · \
         {} actors, every one counted (zero payouts included).</p>",
        escape(&m.epoch),
        escape(&m.tenant),
        escape(&m.inputs_cid),
        grouped(comparison.population() as u128)
    );

    summary_table(&mut out, comparison);

    out.push_str("<h2>Distribution and concentration</h2>\n<div class=\"charts\">\n");
    histogram(&mut out, comparison);
    lorenz(&mut out, comparison);
    out.push_str("</div>\n");

    rows_table(
        &mut out,
        "Top gainers",
        &comparison.top_gainers(top),
        comparison.gainers(),
        "No actor is paid more under B.",
    );
    rows_table(
        &mut out,
        "Top losers",
        &comparison.top_losers(top),
        comparison.losers(),
        "No actor is paid less under B.",
    );
    let capped_total = comparison.rows().filter(|r| r.capped_a || r.capped_b).count();
    rows_table(
        &mut out,
        "Capped actors (the per-actor ceiling bound them under A or B)",
        &comparison.capped(top),
        capped_total,
        "The per-actor ceiling bound no actor under either policy.",
    );

    manifests(&mut out, a, b);

    let _ = writeln!(
        out,
        "<p class=\"muted\">{COMPARE_SCHEMA} · svc-rewarder {} · Each side is the run a compute of the \
         same inputs, policy and tenant makes: a node signs exactly these manifest digests.</p>\n\
         </body>\n</html>",
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn summary_table(out: &mut String, comparison: &Comparison) {
    let (a, b) = (comparison.a().summary(), comparison.b().summary());
    let population = comparison.population();
    out.push_str("<h2>Summary</h2>\n<table>\n");
    let _ = writeln!(
        out,
        "<tr><th></th><th class=\"n a\">A: {}</th><th class=\"n b\">B: {}</th><th class=\"n\">B − A</th></tr>",
        escape(&comparison.a().run().manifest().policy_id),
        escape(&comparison.b().run().manifest().policy_id)
    );
    let count_row = |out: &mut String, label: &str, x: u64, y: u64| {
        let change = i128::from(y) - i128::from(x);
        let _ = writeln!(
            out,
            "<tr><td>{label}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td></tr>",
            grouped(u128::from(x)),
            grouped(u128::from(y)),
            trend(change),
            signed(change)
        );
    };
    let ratio_row = |out: &mut String, label: &str, x: &Ratio, y: &Ratio| {
        let _ = writeln!(
            out,
            "<tr><td>{label}</td><td class=\"n\">{x}</td><td class=\"n\">{y}</td><td class=\"n\">{}</td></tr>",
            x.change_to(y)
        );
    };
    count_row(out, "Payees", a.payees, b.payees);
    count_row(out, "Payout total (minor units)", a.payout_total_minor, b.payout_total_minor);
    count_row(out, "Residual (minor units)", a.residual_minor, b.residual_minor);
    ratio_row(out, "Gini coefficient", &a.gini, &b.gini);
    let top1 = format!("Top 1 % share ({} largest)", grouped(population.div_ceil(100) as u128));
    ratio_row(out, &top1, &a.top1_share, &b.top1_share);
    let top10 = format!("Top 10 % share ({} largest)", grouped(population.div_ceil(10) as u128));
    ratio_row(out, &top10, &a.top10_share, &b.top10_share);
    count_row(out, "Capped by the per-actor ceiling", a.capped, b.capped);
    count_row(out, "Score lowered by a kind cap", a.kind_capped, b.kind_capped);
    count_row(out, "Under the dust threshold (not paid)", a.dust, b.dust);
    out.push_str("</table>\n");
    let _ = writeln!(
        out,
        "<p>{} actors are paid more under B and {} less; payouts change by {} minor units in total.</p>",
        grouped(comparison.gainers() as u128),
        grouped(comparison.losers() as u128),
        signed(comparison.payout_delta())
    );
    out.push_str(
        "<p class=\"muted\">Gini: Σ|x<sub>i</sub> − x<sub>j</sub>| / (2·n·Σx) over every actor, exact, \
         shown to 6 decimals (half to even). A top share is the part of the payout total that \
         the largest payouts take.</p>\n",
    );
}

/// Lower bounds of the payout bins, three per decade (1, 2, 5, 10, 20, 50, …), exact
/// integers, up to 10^19, whose bin holds everything to 2^64 − 1.
fn bin_bounds() -> Vec<u64> {
    let mut bounds = Vec::with_capacity(58);
    let mut decade: u64 = 1;
    loop {
        for step in [1, 2, 5] {
            match decade.checked_mul(step) {
                Some(b) => bounds.push(b),
                None => return bounds,
            }
        }
        match decade.checked_mul(10) {
            Some(d) => decade = d,
            None => return bounds,
        }
    }
}

/// Bin counts of one side's payouts (zeros excluded: they are told apart).
fn bin_counts(side: &Side, bounds: &[u64]) -> Vec<u64> {
    let mut counts = vec![0u64; bounds.len()];
    for &x in side.payouts_ascending() {
        // x ≥ 1 = bounds[0], so the partition point is at least 1.
        counts[bounds.partition_point(|&b| b <= x) - 1] += 1;
    }
    counts
}

/// `1`, `20`, `500`, `1k`, `20M`, …: a bin bound, short.
fn short(bound: u64) -> String {
    const UNITS: [(u64, &str); 6] = [
        (1_000_000_000_000_000_000, "E"),
        (1_000_000_000_000_000, "P"),
        (1_000_000_000_000, "T"),
        (1_000_000_000, "G"),
        (1_000_000, "M"),
        (1_000, "k"),
    ];
    UNITS
        .iter()
        .find(|(unit, _)| bound >= *unit)
        .map_or_else(|| bound.to_string(), |(unit, suffix)| format!("{}{suffix}", bound / unit))
}

fn histogram(out: &mut String, comparison: &Comparison) {
    let (a, b) = (comparison.a(), comparison.b());
    let bounds = bin_bounds();
    let (ca, cb) = (bin_counts(a, &bounds), bin_counts(b, &bounds));
    let used = |i: &usize| ca[*i] + cb[*i] > 0;
    let zeros = |s: &Side| comparison.population() as u64 - s.summary().payees;
    out.push_str("<figure>\n");
    let (Some(lo), Some(hi)) = ((0..bounds.len()).find(used), (0..bounds.len()).rev().find(used)) else {
        out.push_str("<p class=\"muted\">Nothing is paid under either policy.</p>\n</figure>\n");
        return;
    };
    let bins = hi - lo + 1;
    let most = (lo..=hi).map(|i| ca[i].max(cb[i])).max().unwrap_or(1).max(1);
    let (left, top, plot_w, plot_h) = (48u64, 28u64, 560u64, 220u64);
    let width = left + plot_w + 16;
    let height = top + plot_h + 44;
    let group = plot_w / bins as u64;
    let bar = (group * 2 / 5).max(1);
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Payout distribution under A and B\">"
    );
    legend(out, comparison, left, 14);
    let base = top + plot_h;
    let _ = writeln!(
        out,
        "<line x1=\"{left}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#9aa3b2\"/>",
        left + plot_w
    );
    for (tick, value) in [(0, 0), (1, most / 2), (2, most)] {
        let y = base - value * plot_h / most;
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#eef1f5\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6,
            y + 4,
            if tick == 0 { "0".to_owned() } else { grouped(u128::from(value)) }
        );
    }
    let label_every = bins.div_ceil(12).max(1);
    for (j, i) in (lo..=hi).enumerate() {
        let x = left + j as u64 * group;
        let range = match bounds.get(i + 1) {
            Some(next) => format!("{}–{}", short(bounds[i]), short(*next)),
            None => format!("≥ {}", short(bounds[i])),
        };
        for (offset, count, colour, name) in
            [(group / 10, ca[i], COLOUR_A, "A"), (group / 10 + bar, cb[i], COLOUR_B, "B")]
        {
            let h = count * plot_h / most;
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{bar}\" height=\"{h}\" fill=\"{colour}\">\
                 <title>{name}: {} actors paid {range}</title></rect>",
                x + offset,
                base - h,
                grouped(u128::from(count))
            );
        }
        if j % label_every == 0 {
            let _ = writeln!(out, "<text x=\"{x}\" y=\"{}\">{}</text>", base + 16, short(bounds[i]));
        }
    }
    let _ = writeln!(
        out,
        "<text x=\"{left}\" y=\"{}\">payout (minor units), bins 1–2–5 per decade</text>\n</svg>",
        base + 36
    );
    let _ = writeln!(
        out,
        "<figcaption>Actors per payout bin, logarithmic scale. Not paid: {} under A, {} under B.</figcaption>\n</figure>",
        grouped(u128::from(zeros(a))),
        grouped(u128::from(zeros(b)))
    );
}

fn legend(out: &mut String, comparison: &Comparison, x: u64, y: u64) {
    for (dx, colour, side, name) in [(0, COLOUR_A, comparison.a(), "A"), (220, COLOUR_B, comparison.b(), "B")]
    {
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"{y}\">{name}: {}</text>",
            x + dx,
            y - 9,
            x + dx + 14,
            escape(&side.run().manifest().policy_id)
        );
    }
}

/// The Lorenz curve of one side as SVG polyline points, in a `size`-pixel square at
/// (`left`, `top`): actors poorest first on x, their cumulative share of the payout on y.
fn lorenz_points(side: &Side, population: usize, left: u64, top: u64, size: u64) -> String {
    let total: u128 = side.payouts_ascending().iter().map(|&x| u128::from(x)).sum();
    let zeros = population - side.payouts_ascending().len();
    let mut prefix = Vec::with_capacity(side.payouts_ascending().len() + 1);
    prefix.push(0u128);
    for &x in side.payouts_ascending() {
        prefix.push(prefix[prefix.len() - 1] + u128::from(x));
    }
    let segments = population.min(LORENZ_SEGMENTS_MAX);
    let mut points = String::new();
    for j in 0..=segments {
        let i = j * population / segments;
        let share = prefix[i.saturating_sub(zeros)];
        let x = u128::from(left) + i as u128 * u128::from(size) / population as u128;
        let y = u128::from(top + size) - share * u128::from(size) / total;
        let _ = write!(points, "{}{x},{y}", if j == 0 { "" } else { " " });
    }
    points
}

fn lorenz(out: &mut String, comparison: &Comparison) {
    let population = comparison.population();
    let (left, top, size) = (48u64, 28u64, 300u64);
    let (width, height) = (left + size + 24, top + size + 44);
    out.push_str("<figure>\n");
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"Lorenz curves under A and B\">"
    );
    legend(out, comparison, left, 14);
    let (right, bottom) = (left + size, top + size);
    let _ = writeln!(
        out,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{size}\" height=\"{size}\" fill=\"none\" stroke=\"#9aa3b2\"/>\
         <line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{top}\" stroke=\"#9aa3b2\" stroke-dasharray=\"4 4\"/>"
    );
    for (pct, offset) in [(0, 0), (50, size / 2), (100, size)] {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{pct} %</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{pct} %</text>",
            left + offset,
            bottom + 16,
            left - 6,
            bottom - offset + 4
        );
    }
    for (side, colour) in [(comparison.a(), COLOUR_A), (comparison.b(), COLOUR_B)] {
        if population > 0 && side.summary().payout_total_minor > 0 {
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                lorenz_points(side, population, left, top, size)
            );
        }
    }
    let _ = writeln!(
        out,
        "<text x=\"{left}\" y=\"{}\">actors, poorest first → share of the payout total</text>\n</svg>",
        bottom + 36
    );
    out.push_str(
        "<figcaption>Lorenz curves: the further below the diagonal, the more concentrated the \
         payouts.</figcaption>\n</figure>\n",
    );
}

fn rows_table(out: &mut String, title: &str, rows: &[Row<'_>], total: usize, none: &str) {
    let _ = writeln!(out, "<h2>{}</h2>", escape(title));
    if rows.is_empty() {
        let _ = writeln!(out, "<p class=\"muted\">{}</p>", escape(none));
        return;
    }
    if rows.len() < total {
        let _ = writeln!(
            out,
            "<p class=\"muted\">The first {} of {}, largest change first.</p>",
            grouped(rows.len() as u128),
            grouped(total as u128)
        );
    }
    out.push_str(
        "<table>\n<tr><th>Actor</th><th class=\"n a\">A</th><th class=\"n b\">B</th>\
         <th class=\"n\">B − A</th><th>Bound</th></tr>\n",
    );
    for r in rows {
        out.push_str("<tr><td><code>");
        push_escaped(out, r.actor);
        let _ = write!(
            out,
            "</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td>",
            grouped(u128::from(r.amount_a)),
            grouped(u128::from(r.amount_b)),
            trend(r.delta()),
            signed(r.delta())
        );
        for (on, tag) in [
            (r.capped_a, "capped under A"),
            (r.capped_b, "capped under B"),
            (r.dust_a, "dust under A"),
            (r.dust_b, "dust under B"),
        ] {
            if on {
                let _ = write!(out, "<span class=\"tag\">{tag}</span>");
            }
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n");
}

fn manifests(out: &mut String, a: &Side, b: &Side) {
    out.push_str(
        "<h2>Manifests</h2>\n<p class=\"muted\">What ties this page to the runs: the manifest digest \
         is what a node signs for the same inputs, policy and tenant (CALCULUS.md §4).</p>\n<table>\n\
         <tr><th>Field</th><th class=\"a\">A</th><th class=\"b\">B</th></tr>\n",
    );
    let fields = |m: &Manifest, digest: String| -> Vec<(&'static str, String)> {
        vec![
            ("manifest_digest", digest),
            ("run_id", m.run_id.clone()),
            ("policy_id", m.policy_id.clone()),
            ("policy_hash", m.policy_hash.clone()),
            ("inputs_cid", m.inputs_cid.clone()),
            ("epoch", m.epoch.clone()),
            ("tenant", m.tenant.clone()),
            ("pool_minor", m.pool_minor.clone()),
            ("distributable_minor", m.distributable_minor.clone()),
            ("payout_total_minor", m.payout_total_minor.clone()),
            ("residual_minor", m.residual_minor.clone()),
            ("payees", m.payees.to_string()),
            ("allocations_root", m.allocations_root.clone()),
            ("schema", m.schema.clone()),
        ]
    };
    let fa = fields(a.run().manifest(), a.run().manifest_digest());
    let fb = fields(b.run().manifest(), b.run().manifest_digest());
    for ((name, x), (_, y)) in fa.iter().zip(&fb) {
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            escape(x),
            escape(y)
        );
    }
    out.push_str("</table>\n");
}

/// `1,234,567`.
fn grouped(x: u128) -> String {
    let digits = x.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `+1,234`, `-56`, `0`.
fn signed(x: i128) -> String {
    match x.signum() {
        1 => format!("+{}", grouped(x.unsigned_abs())),
        -1 => format!("-{}", grouped(x.unsigned_abs())),
        _ => "0".to_owned(),
    }
}

/// The class suffix colouring a change.
fn trend(x: i128) -> &'static str {
    match x.signum() {
        1 => " up",
        -1 => " down",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_replaces_every_markup_character() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("acct:plain-1"), "acct:plain-1");
    }

    #[test]
    fn bins_are_one_two_five_per_decade_up_to_the_largest_amount() {
        let bounds = bin_bounds();
        assert_eq!(&bounds[..7], &[1, 2, 5, 10, 20, 50, 100]);
        assert_eq!(*bounds.last().unwrap(), 10_000_000_000_000_000_000);
        assert_eq!(bounds.partition_point(|&b| b <= 19), 4);
        assert_eq!(short(20_000), "20k");
        assert_eq!(short(500), "500");
        assert_eq!(short(5_000_000_000), "5G");
    }

    #[test]
    fn numbers_are_grouped_and_signed() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999_944), "999,944");
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(signed(-56), "-56");
        assert_eq!(signed(1234), "+1,234");
        assert_eq!(signed(0), "0");
    }

    #[test]
    fn the_policy_pins_the_stylesheet() {
        let csp = content_security_policy();
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
    }
}
