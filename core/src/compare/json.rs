//! The comparison body (API.md §1.3): what `POST /rewarder/epochs/{epoch}/compare` answers
//! and `rewarder-micronode compare` prints. Compact JSON, members in a fixed order, amounts as
//! decimal strings (deltas with a `-` when negative), counts as JSON integers.

use serde::Serialize;

use super::{Comparison, Ratio, Row, Side, Summary};
use crate::manifest::Manifest;

/// The body's `schema`.
pub const COMPARE_SCHEMA: &str = "rewarder.compare.v1";

/// Renders `comparison` with at most `top` movers.
pub fn render(comparison: &Comparison, top: usize) -> Vec<u8> {
    let (a, b) = (comparison.a(), comparison.b());
    let movers = comparison.movers(top);
    let body = Body {
        schema: COMPARE_SCHEMA,
        tenant: &a.run().manifest().tenant,
        epoch: &a.run().manifest().epoch,
        inputs_cid: &a.run().manifest().inputs_cid,
        population: comparison.population(),
        a: SideJson::from(a),
        b: SideJson::from(b),
        change: Change {
            payees: i128::from(b.summary().payees) - i128::from(a.summary().payees),
            payout_total_minor: comparison.payout_delta().to_string(),
            residual_minor: (i128::from(b.summary().residual_minor) - i128::from(a.summary().residual_minor))
                .to_string(),
            gini: a.summary().gini.change_to(&b.summary().gini),
            top1_share: a.summary().top1_share.change_to(&b.summary().top1_share),
            top10_share: a.summary().top10_share.change_to(&b.summary().top10_share),
            movers: comparison.gainers() + comparison.losers(),
            gainers: comparison.gainers(),
            losers: comparison.losers(),
        },
        top,
        movers: movers.iter().map(MoverJson::from).collect(),
    };
    // Strings, integers and booleans into memory: serializing cannot fail.
    serde_json::to_vec(&body).expect("serializing a comparison into memory")
}

#[derive(Serialize)]
struct Body<'a> {
    schema: &'static str,
    tenant: &'a str,
    epoch: &'a str,
    inputs_cid: &'a str,
    population: usize,
    a: SideJson<'a>,
    b: SideJson<'a>,
    change: Change,
    top: usize,
    movers: Vec<MoverJson<'a>>,
}

#[derive(Serialize)]
struct SideJson<'a> {
    manifest: &'a Manifest,
    manifest_digest: String,
    summary: SummaryJson,
}

impl<'a> From<&'a Side> for SideJson<'a> {
    fn from(side: &'a Side) -> Self {
        SideJson {
            manifest: side.run().manifest(),
            manifest_digest: side.run().manifest_digest(),
            summary: SummaryJson::from(side.summary()),
        }
    }
}

#[derive(Serialize)]
struct SummaryJson {
    payees: u64,
    payout_total_minor: String,
    residual_minor: String,
    gini: String,
    gini_exact: String,
    top1_share: String,
    top10_share: String,
    capped: u64,
    kind_capped: u64,
    dust: u64,
}

impl From<&Summary> for SummaryJson {
    fn from(s: &Summary) -> Self {
        let exact = |r: &Ratio| format!("{}/{}", r.num(), r.den());
        SummaryJson {
            payees: s.payees,
            payout_total_minor: s.payout_total_minor.to_string(),
            residual_minor: s.residual_minor.to_string(),
            gini: s.gini.to_string(),
            gini_exact: exact(&s.gini),
            top1_share: s.top1_share.to_string(),
            top10_share: s.top10_share.to_string(),
            capped: s.capped,
            kind_capped: s.kind_capped,
            dust: s.dust,
        }
    }
}

/// B − A for every summary figure that changes.
#[derive(Serialize)]
struct Change {
    payees: i128,
    payout_total_minor: String,
    residual_minor: String,
    gini: String,
    top1_share: String,
    top10_share: String,
    movers: usize,
    gainers: usize,
    losers: usize,
}

#[derive(Serialize)]
struct MoverJson<'a> {
    actor: &'a str,
    amount_a_minor: String,
    amount_b_minor: String,
    delta_minor: String,
    capped_a: bool,
    capped_b: bool,
    dust_a: bool,
    dust_b: bool,
}

impl<'a> From<&Row<'a>> for MoverJson<'a> {
    fn from(r: &Row<'a>) -> Self {
        MoverJson {
            actor: r.actor,
            amount_a_minor: r.amount_a.to_string(),
            amount_b_minor: r.amount_b.to_string(),
            delta_minor: r.delta().to_string(),
            capped_a: r.capped_a,
            capped_b: r.capped_b,
            dust_a: r.dust_a,
            dust_b: r.dust_b,
        }
    }
}
