//! How incidents are stored: one document per incident (`incident/{id}`) plus a small meta
//! document (`incidents/state`: configuration and id counter), so an operation writes only the
//! incidents it changed and one large incident slows nothing but itself. Databases written
//! before kept every incident in `incidents/state`; [`load`] moves them to one document each.

use crate::storage::store::{Batch, DocRecord, Store};
use dcim_alarms::{Incident, Incidents, IncidentsMeta};

/// Doc kind and id of the meta document.
pub const META_DOC: (&str, &str) = ("incidents", "state");
/// Doc kind of one incident (id = the incident number).
pub const INCIDENT_DOC: &str = "incident";

/// The documents to write after the incidents `ids` changed: theirs and the meta document.
pub fn docs(
    incidents: &Incidents,
    ids: impl IntoIterator<Item = u64>,
    now_ms: i64,
) -> serde_json::Result<Vec<(String, DocRecord)>> {
    let mut ids: Vec<u64> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::with_capacity(ids.len() + 1);
    for id in ids {
        if let Some(i) = incidents.get(id) {
            out.push((
                INCIDENT_DOC.into(),
                DocRecord {
                    id: id.to_string(),
                    updated_ms: now_ms,
                    body: serde_json::to_value(i)?,
                },
            ));
        }
    }
    out.push((
        META_DOC.0.into(),
        DocRecord {
            id: META_DOC.1.into(),
            updated_ms: now_ms,
            body: serde_json::to_value(incidents.meta())?,
        },
    ));
    Ok(out)
}

/// The stored incidents (`None` on a fresh database), moving an old single document to one
/// document per incident first (stamped with the old document's time: their contents are
/// as old as it, and no clock is read here).
pub async fn load(store: &dyn Store) -> anyhow::Result<Option<Incidents>> {
    use anyhow::Context;
    let meta = store
        .list_docs(META_DOC.0)
        .await?
        .into_iter()
        .find(|d| d.id == META_DOC.1);
    let Some(meta) = meta else {
        return Ok(None);
    };
    if meta
        .body
        .get("list")
        .is_some_and(|l| l.as_array().is_some_and(|a| !a.is_empty()))
    {
        let written_ms = meta.updated_ms;
        let old: Incidents =
            serde_json::from_value(meta.body).context("stored incidents do not decode")?;
        let n = old.list.len();
        let batch = Batch {
            docs: docs(&old, old.list.iter().map(|i| i.id), written_ms)?,
            ..Default::default()
        };
        store.commit_batch(&batch).await?;
        tracing::info!(incidents = n, "stored incidents moved to one document each");
        return Ok(Some(old));
    }
    let m: IncidentsMeta =
        serde_json::from_value(meta.body).context("stored incidents meta does not decode")?;
    let mut list: Vec<Incident> = Vec::new();
    for d in store.list_docs(INCIDENT_DOC).await? {
        match serde_json::from_value(d.body) {
            Ok(i) => list.push(i),
            Err(e) => {
                tracing::warn!(incident = %d.id, "stored incident does not decode, skipped: {e}")
            }
        }
    }
    Ok(Some(Incidents::from_parts(m, list)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_alarms::IncidentConfig;

    /// Hazard: every incident operation rewrote one document holding all incidents, so after
    /// twenty 2 MB notes each operation took up to a second.
    #[tokio::test]
    async fn incidents_are_stored_one_by_one_and_old_databases_are_moved() {
        let dir = tempfile::tempdir().unwrap();
        let s = crate::storage::store::SqliteStore::open(dir.path())
            .await
            .unwrap();
        assert!(load(&s).await.unwrap().is_none());
        let mut inc = Incidents::new(IncidentConfig::default());
        let a = inc.open("a", 2, "op", 0).unwrap();
        let b = inc.open("b", 3, "op", 0).unwrap();
        // Old format: everything in incidents/state.
        s.put_doc(
            META_DOC.0,
            &DocRecord {
                id: META_DOC.1.into(),
                updated_ms: 0,
                body: serde_json::to_value(&inc).unwrap(),
            },
            None,
        )
        .await
        .unwrap();
        let back = load(&s).await.unwrap().unwrap();
        assert_eq!(back.list, inc.list);
        assert_eq!(s.list_docs(INCIDENT_DOC).await.unwrap().len(), 2);
        // A change writes its incident and the meta only.
        inc.note(b, "n", "op", 1).unwrap();
        let d = docs(&inc, [b], 1).unwrap();
        assert_eq!(d.len(), 2);
        assert!(d[1].1.body.get("list").is_none());
        s.commit_batch(&Batch {
            docs: d,
            ..Default::default()
        })
        .await
        .unwrap();
        let back = load(&s).await.unwrap().unwrap();
        assert_eq!(back.get(a), inc.get(a));
        assert_eq!(back.get(b).unwrap().journal.len(), 2);
    }
}
