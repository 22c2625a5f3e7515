//! The PostgreSQL backend's `impl Dags for PgStore`: DAG versions, import errors, file sync and pausing.

use super::*;

#[async_trait]
impl Dags for PgStore {
    async fn upsert_dag(
        &self,
        dag: &Dag,
        file: &str,
        source: &str,
        hash: &str,
        owner: &str,
    ) -> Result<bool> {
        let version = NewVersion {
            dag: dag.clone(),
            file: file.to_owned(),
            source: source.to_owned(),
            hash: hash.to_owned(),
        };
        let owner = owner.to_owned();
        let origin = Origin::Folder {
            processor: owner.clone(),
        };
        self.write(move |tx| {
            Box::pin(async move {
                claim(tx, &[&version], &owner).await?;
                Ok(store_version(tx, &version, &owner, &origin)
                    .await?
                    .new_version)
            })
        })
        .await
    }

    async fn push_dags(&self, versions: &[NewVersion], by: &str) -> Result<Vec<Stored>> {
        let versions = versions.to_vec();
        let origin = Origin::Push { by: by.to_owned() };
        self.write(move |tx| {
            Box::pin(async move {
                let all: Vec<&NewVersion> = versions.iter().collect();
                claim(tx, &all, PUSH_OWNER).await?;
                let mut stored = Vec::with_capacity(versions.len());
                for v in &versions {
                    stored.push(store_version(tx, v, PUSH_OWNER, &origin).await?);
                }
                Ok(stored)
            })
        })
        .await
    }

    async fn register_git_source(&self, spec: &GitSourceSpec) -> Result<SourceRow> {
        let spec = spec.clone();
        self.write(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "INSERT INTO dag_sources (name, url, reference, path, created_at)
                     VALUES ($1, $2, $3, $4, now()) ON CONFLICT (name) DO NOTHING",
                    &[&spec.name, &spec.url, &spec.reference, &spec.path],
                )
                .await?;
                let row = source_by_name(tx, &spec.name)
                    .await?
                    .ok_or_else(|| Error::Database(format!("git source {} vanished", spec.name)))?;
                check_same_source(&spec, &row)?;
                Ok(row)
            })
        })
        .await
    }

    async fn get_source(&self, name: &str) -> Result<Option<SourceRow>> {
        let name = name.to_owned();
        self.single(move |c| Box::pin(async move { source_by_name(c, &name).await }))
            .await
    }

    async fn list_sources(&self) -> Result<Vec<SourceRow>> {
        self.single(|c| {
            Box::pin(async move {
                let sql = format!("SELECT {SOURCE_COLS} FROM dag_sources ORDER BY name");
                Ok(c.rows(&sql, &[]).await?.iter().map(source_row).collect())
            })
        })
        .await
    }

    async fn request_refresh(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.single(move |c| {
            Box::pin(async move {
                Ok(c.exec(
                    "UPDATE dag_sources SET refresh_requested_at = now() WHERE name = $1",
                    &[&name],
                )
                .await?
                    > 0)
            })
        })
        .await
    }

    async fn apply_git_commit(&self, commit: &GitCommit) -> Result<GitApplied> {
        let commit = commit.clone();
        self.write(move |tx| {
            Box::pin(async move {
                // The source's row, locked: followers of one source store
                // one commit at a time.
                let Some(row) = tx
                    .opt(
                        "SELECT commit_id FROM dag_sources WHERE name = $1 FOR UPDATE",
                        &[&commit.source],
                    )
                    .await?
                else {
                    return Err(Error::Invalid(format!(
                        "no git source {} is registered",
                        commit.source
                    )));
                };
                let current: Option<String> = row.get(0);
                if current != commit.expected {
                    return Ok(GitApplied::Stale(current));
                }
                let owner = git_owner(&commit.source);
                let origin = Origin::Git {
                    source: commit.source.clone(),
                    commit: commit.commit.clone(),
                };
                lock_ids(tx, commit.versions.iter()).await?;
                let mut stored = Vec::new();
                let mut refused = Vec::new();
                for v in &commit.versions {
                    match refusal_of(tx, v, &owner).await? {
                        Some(refusal) => {
                            refused.push((v.file.clone(), v.dag.id.clone(), refusal.to_string()))
                        }
                        None => stored.push(store_version(tx, v, &owner, &origin).await?),
                    }
                }
                // The source's DAGs this commit does not have are gone; one
                // whose file is broken in it keeps its last good version.
                let kept: Vec<String> = stored.iter().map(|s| s.dag_id.0.clone()).collect();
                let broken: Vec<String> = commit.errors.iter().map(|(f, _)| f.clone()).collect();
                let retired = tx
                    .rows(
                        "UPDATE dags SET active = false, updated_at = now()
                         WHERE owner = $1 AND active AND NOT (dag_id = ANY($2))
                           AND NOT (file = ANY($3))
                         RETURNING dag_id",
                        &[&owner, &kept, &broken],
                    )
                    .await?
                    .iter()
                    .map(|r| DagId(r.get(0)))
                    .collect();
                // The commit's import errors replace the source's; one that
                // is the same as before keeps its row (and when it was reported).
                let errors = git_import_errors(&commit, &refused);
                let files: Vec<String> = errors.iter().map(|(f, _, _)| f.clone()).collect();
                tx.exec(
                    "DELETE FROM import_errors WHERE owner = $1 AND NOT (file = ANY($2))",
                    &[&owner, &files],
                )
                .await?;
                for (file, dag_id, errors) in &errors {
                    tx.exec(
                        "INSERT INTO import_errors (file, dag_id, errors, updated_at, owner)
                         VALUES ($1, $2, $3, now(), $4)
                         ON CONFLICT (file) DO UPDATE SET dag_id = $2, errors = $3,
                             updated_at = now(), owner = $4
                         WHERE import_errors.errors IS DISTINCT FROM EXCLUDED.errors
                            OR import_errors.owner IS DISTINCT FROM EXCLUDED.owner
                            OR import_errors.dag_id IS DISTINCT FROM EXCLUDED.dag_id",
                        &[file, dag_id, &to_value(errors)?, &owner],
                    )
                    .await?;
                }
                tx.exec(
                    "UPDATE dag_sources SET commit_id = $2, committed_at = $3, applied_at = now(),
                         applied_by = $4
                     WHERE name = $1",
                    &[
                        &commit.source,
                        &commit.commit,
                        &commit.committed_at,
                        &commit.by,
                    ],
                )
                .await?;
                Ok(GitApplied::Applied {
                    stored,
                    refused,
                    retired,
                })
            })
        })
        .await
    }

    async fn record_import_errors(
        &self,
        file: &str,
        dag_id: Option<&str>,
        errors: &[DagError],
        owner: &str,
    ) -> Result<()> {
        let errors = to_value(&errors)?;
        let (file, dag_id, owner) = (file.to_owned(), dag_id.map(str::to_owned), owner.to_owned());
        self.single(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "INSERT INTO import_errors (file, dag_id, errors, updated_at, owner)
                     VALUES ($1, $2, $3, now(), $4)
                     ON CONFLICT (file) DO UPDATE SET dag_id = $2, errors = $3, updated_at = now(),
                         owner = $4",
                    &[&file, &dag_id, &errors, &owner],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn sync_files(&self, owner: &str, present: &[String]) -> Result<Vec<String>> {
        let (owner, present) = (owner.to_owned(), present.to_vec());
        self.write(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "UPDATE dags SET active = false, updated_at = now()
                     WHERE active AND owner IN ($1, '') AND NOT (file = ANY($2))",
                    &[&owner, &present],
                )
                .await?;
                tx.exec(
                    "DELETE FROM import_errors WHERE owner IN ($1, '') AND NOT (file = ANY($2))",
                    &[&owner, &present],
                )
                .await?;
                let unknown = tx
                    .rows(
                        "SELECT f FROM unnest($1::text[]) AS f
                         WHERE NOT EXISTS (SELECT 1 FROM dags d WHERE d.file = f)
                           AND NOT EXISTS (SELECT 1 FROM import_errors e WHERE e.file = f)
                         ORDER BY f",
                        &[&present],
                    )
                    .await?;
                Ok(unknown.iter().map(|r| r.get(0)).collect())
            })
        })
        .await
    }

    async fn drop_import_errors(&self, owner: &str) -> Result<()> {
        let owner = owner.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                tx.exec("DELETE FROM import_errors WHERE owner = $1", &[&owner])
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn list_dags(&self) -> Result<Vec<DagRow>> {
        self.single(|c| {
            Box::pin(async move {
                let sql = format!("SELECT {DAG_COLS} FROM dags ORDER BY dag_id");
                Ok(c.rows(&sql, &[]).await?.iter().map(dag_row).collect())
            })
        })
        .await
    }

    async fn dag_page(&self, q: &DagQuery) -> Result<DagPage> {
        let pattern = q.like_pattern();
        let (tag, paused, removed) = (q.tag.clone(), q.paused, q.include_inactive);
        let limit = i64::from(q.page_size());
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
        self.single(move |c| {
            Box::pin(async move {
                // One WHERE for the page and its count: $1 pattern, $2 tag,
                // $3 paused, $4 removed ones too (NULL: no filter).
                let filter = "($4 OR active)
                     AND ($3::bool IS NULL OR paused = $3)
                     AND ($1::text IS NULL OR lower(dag_id) LIKE $1 ESCAPE '\\'
                          OR lower(coalesce(description, '')) LIKE $1 ESCAPE '\\')
                     AND ($2::text IS NULL OR tags ? $2)";
                let args: [&(dyn ToSql + Sync); 4] = [&pattern, &tag, &paused, &removed];
                let matched: i64 = c
                    .one(&format!("SELECT count(*) FROM dags WHERE {filter}"), &args)
                    .await?
                    .get(0);
                let sql = format!(
                    "SELECT {DAG_COLS} FROM dags WHERE {filter} ORDER BY dag_id LIMIT $5 OFFSET $6"
                );
                let dags = c
                    .rows(&sql, &[&pattern, &tag, &paused, &removed, &limit, &offset])
                    .await?
                    .iter()
                    .map(dag_row)
                    .collect();
                let counts = c
                    .one(
                        "SELECT count(*), count(*) FILTER (WHERE paused) FROM dags WHERE active",
                        &[],
                    )
                    .await?;
                Ok(DagPage {
                    dags,
                    matched: u64::try_from(matched).unwrap_or(0),
                    active: u64::try_from(counts.get::<_, i64>(0)).unwrap_or(0),
                    paused: u64::try_from(counts.get::<_, i64>(1)).unwrap_or(0),
                })
            })
        })
        .await
    }

    async fn dag_tags(&self) -> Result<Vec<String>> {
        self.single(|c| {
            Box::pin(async move {
                Ok(c.rows(
                    "SELECT DISTINCT t FROM dags, jsonb_array_elements_text(tags) AS t
                     WHERE active ORDER BY 1",
                    &[],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect())
            })
        })
        .await
    }

    async fn dags_changed_since(&self, since: Timestamp) -> Result<Vec<DagRow>> {
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {DAG_COLS} FROM dags WHERE updated_at >= $1 ORDER BY updated_at"
                );
                Ok(c.rows(&sql, &[&since]).await?.iter().map(dag_row).collect())
            })
        })
        .await
    }

    async fn get_dag(&self, dag_id: &DagId) -> Result<Option<DagRow>> {
        let id = dag_id.0.clone();
        self.single(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {DAG_COLS} FROM dags WHERE dag_id = $1");
                Ok(c.opt(&sql, &[&id]).await?.as_ref().map(dag_row))
            })
        })
        .await
    }

    async fn get_dags(&self, dags: &[DagId]) -> Result<Vec<DagRow>> {
        if dags.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = dags.iter().map(|d| d.0.clone()).collect();
        self.single(move |c| {
            Box::pin(async move {
                let sql =
                    format!("SELECT {DAG_COLS} FROM dags WHERE dag_id = ANY($1) ORDER BY dag_id");
                Ok(c.rows(&sql, &[&ids]).await?.iter().map(dag_row).collect())
            })
        })
        .await
    }

    async fn get_version(&self, dag_id: &DagId, hash: &str) -> Result<Option<DagVersion>> {
        let (id, hash) = (dag_id.0.clone(), hash.to_owned());
        self.single(move |c| {
            Box::pin(async move {
                let Some(r) = c
                    .opt(
                        "SELECT file, source, spec, created_at, origin FROM dag_versions
                         WHERE dag_id = $1 AND version_hash = $2",
                        &[&id, &hash],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                let spec: Dag = serde_json::from_str(r.get::<_, &str>(2)).map_err(|e| {
                    Error::Database(format!("stored DAG version {id}@{hash} is unreadable: {e}"))
                })?;
                Ok(Some(DagVersion {
                    dag_id: DagId(id),
                    version_hash: hash,
                    file: r.get(0),
                    source: r.get(1),
                    spec,
                    created_at: r.get(3),
                    origin: Origin::from_text(r.get(4)),
                }))
            })
        })
        .await
    }

    async fn list_versions(&self, dag_id: &DagId) -> Result<Vec<VersionInfo>> {
        let dag_id = dag_id.0.clone();
        self.single(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT version_hash, file, created_at, origin FROM dag_versions
                         WHERE dag_id = $1 ORDER BY created_at DESC, version_hash",
                        &[&dag_id],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| VersionInfo {
                        version_hash: r.get(0),
                        file: r.get(1),
                        created_at: r.get(2),
                        origin: Origin::from_text(r.get(3)),
                    })
                    .collect())
            })
        })
        .await
    }

    async fn list_import_errors(&self) -> Result<Vec<ImportError>> {
        self.single(|c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT file, dag_id, errors, updated_at FROM import_errors ORDER BY file",
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| ImportError {
                        file: r.get(0),
                        dag_id: r.get(1),
                        errors: serde_json::from_value(r.get(2)).unwrap_or_default(),
                        updated_at: r.get(3),
                    })
                    .collect())
            })
        })
        .await
    }

    async fn delete_dag(&self, dag_id: &DagId, what: DagDeletion) -> Result<DeleteDag> {
        let id = dag_id.0.clone();
        self.write(move |tx| {
            Box::pin(async move {
                // The row lock holds off a scheduler creating a scheduled run
                // of it (that updates the same row) until this commits.
                let Some(row) = tx
                    .opt(
                        "SELECT file, active FROM dags WHERE dag_id = $1 FOR UPDATE",
                        &[&id],
                    )
                    .await?
                else {
                    return Ok(DeleteDag::NotFound);
                };
                let unfinished: Vec<RunId> = tx
                    .rows(
                        "SELECT id FROM runs WHERE dag_id = $1 AND state IN ('queued', 'running')
                         ORDER BY id LIMIT 20",
                        &[&id],
                    )
                    .await?
                    .iter()
                    .map(|r| RunId(r.get(0)))
                    .collect();
                if !unfinished.is_empty() {
                    return Ok(DeleteDag::Unfinished(unfinished));
                }
                let file: String = row.get(0);
                let active: bool = row.get(1);
                // A pushed DAG has no file anything scans.
                let mut deleted = DagDeleted {
                    file_present: active && !file.starts_with("push:"),
                    file,
                    ..DagDeleted::default()
                };
                if what == DagDeletion::Everything {
                    deleted.log_lines = tx
                        .exec(
                            "DELETE FROM logs WHERE ti_id IN
                                 (SELECT id FROM task_instances WHERE dag_id = $1)",
                            &[&id],
                        )
                        .await?;
                    deleted.attempts = tx
                        .exec(
                            "DELETE FROM attempts WHERE ti_id IN
                                 (SELECT id FROM task_instances WHERE dag_id = $1)",
                            &[&id],
                        )
                        .await?;
                    deleted.task_instances = tx
                        .exec("DELETE FROM task_instances WHERE dag_id = $1", &[&id])
                        .await?;
                    deleted.runs = tx
                        .exec("DELETE FROM runs WHERE dag_id = $1", &[&id])
                        .await?;
                    deleted.backfills = tx
                        .exec("DELETE FROM backfills WHERE dag_id = $1", &[&id])
                        .await?;
                    tx.exec("DELETE FROM schedule_slots WHERE dag_id = $1", &[&id])
                        .await?;
                    tx.exec("DELETE FROM dag_versions WHERE dag_id = $1", &[&id])
                        .await?;
                }
                tx.exec("DELETE FROM dags WHERE dag_id = $1", &[&id])
                    .await?;
                Ok(DeleteDag::Deleted(deleted))
            })
        })
        .await
    }

    async fn set_paused(&self, dag_id: &DagId, paused: bool) -> Result<bool> {
        let id = dag_id.0.clone();
        let origin = self.origin.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let changed = tx
                    .exec(
                        "UPDATE dags SET paused = $2, updated_at = now() WHERE dag_id = $1",
                        &[&id, &paused],
                    )
                    .await?
                    > 0;
                if changed && !paused {
                    tx.exec("SELECT pg_notify('gale_changed', $1)", &[&origin])
                        .await?;
                }
                Ok(changed)
            })
        })
        .await
    }
}

/// Takes the DAG ids of `versions` for `owner` (refused if another source
/// holds one). Definitions of one DAG id are serialised (an advisory lock per
/// id, taken in id order), so two writers cannot both pass the check.
async fn claim(tx: &Tx<'_>, versions: &[&NewVersion], owner: &str) -> Result<()> {
    lock_ids(tx, versions.iter().copied()).await?;
    for v in versions {
        if let Some(refusal) = refusal_of(tx, v, owner).await? {
            return Err(refusal);
        }
    }
    Ok(())
}

/// Serialises definitions of the DAG ids of `versions`: an advisory lock per
/// id, taken in id order (so writers of several ids never deadlock).
async fn lock_ids(tx: &Tx<'_>, versions: impl Iterator<Item = &NewVersion>) -> Result<()> {
    let mut ids: Vec<&str> = versions.map(|v| v.dag.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in &ids {
        tx.exec("SELECT pg_advisory_xact_lock(hashtext($1))", &[id])
            .await?;
    }
    Ok(())
}

/// Why `owner` may not store `v`: the active row that has its DAG id (its
/// file and owner) judged by `refuse_claim`.
async fn refusal_of(tx: &Tx<'_>, v: &NewVersion, owner: &str) -> Result<Option<Error>> {
    let held: Option<(String, String)> = tx
        .opt(
            "SELECT file, owner FROM dags WHERE dag_id = $1 AND active",
            &[&v.dag.id.as_str()],
        )
        .await?
        .map(|r| (r.get(0), r.get(1)));
    Ok(refuse_claim(
        v.dag.id.as_str(),
        &v.file,
        owner,
        held.as_ref().map(|(f, o)| (f.as_str(), o.as_str())),
    ))
}

/// Stores one version (its claim already allowed): the version if its
/// content is new, the DAG row pointing at it for `owner`, and no import
/// error for its file. A folder's file defines one DAG: a DAG it defined
/// under another id is made inactive.
async fn store_version(
    tx: &Tx<'_>,
    v: &NewVersion,
    owner: &str,
    origin: &Origin,
) -> Result<Stored> {
    let id = v.dag.id.as_str();
    let spec = serde_json::to_string(&v.dag)
        .map_err(|e| Error::Invalid(format!("cannot encode JSON: {e}")))?;
    let before: Option<String> = tx
        .opt("SELECT version_hash FROM dags WHERE dag_id = $1", &[&id])
        .await?
        .map(|r| r.get(0));
    let new_version = tx
        .exec(
            "INSERT INTO dag_versions (dag_id, version_hash, file, source, spec, created_at, origin)
             VALUES ($1, $2, $3, $4, $5, now(), $6) ON CONFLICT DO NOTHING",
            &[&id, &v.hash, &v.file, &v.source, &spec, &origin.to_text()],
        )
        .await?
        > 0;
    tx.exec(
        "INSERT INTO dags (dag_id, file, version_hash, paused, active, schedule, timezone,
             max_active_runs, description, tags, created_at, updated_at, owner)
         VALUES ($1, $2, $3, $10, true, $4, $5, $6, $7, $8, now(), now(), $9)
         ON CONFLICT (dag_id) DO UPDATE SET file = $2, version_hash = $3, active = true,
             schedule = $4, timezone = $5, max_active_runs = $6, description = $7,
             tags = $8, updated_at = now(), owner = $9",
        &[
            &id,
            &v.file,
            &v.hash,
            &v.dag.schedule,
            &v.dag.timezone,
            &i32_of(v.dag.max_active_runs),
            &v.dag.description,
            &to_value(&v.dag.tags)?,
            &owner,
            &v.dag.is_paused_upon_creation.unwrap_or(false),
        ],
    )
    .await?;
    if OwnerKind::of(owner) == OwnerKind::Folder {
        tx.exec(
            "UPDATE dags SET active = false, updated_at = now()
             WHERE file = $1 AND dag_id <> $2 AND active",
            &[&v.file, &id],
        )
        .await?;
    }
    tx.exec("DELETE FROM import_errors WHERE file = $1", &[&v.file])
        .await?;
    Ok(Stored {
        dag_id: v.dag.id.clone(),
        version_hash: v.hash.clone(),
        new_version,
        changed: before.as_deref() != Some(v.hash.as_str()),
    })
}

const SOURCE_COLS: &str = "name, url, reference, path, commit_id, committed_at, applied_at, \
     applied_by, refresh_requested_at, created_at";

fn source_row(r: &Row) -> SourceRow {
    SourceRow {
        name: r.get(0),
        url: r.get(1),
        reference: r.get(2),
        path: r.get(3),
        commit: r.get(4),
        committed_at: r.get(5),
        applied_at: r.get(6),
        applied_by: r.get(7),
        refresh_requested_at: r.get(8),
        created_at: r.get(9),
    }
}

async fn source_by_name(c: &(impl Conn + ?Sized), name: &str) -> Result<Option<SourceRow>> {
    let sql = format!("SELECT {SOURCE_COLS} FROM dag_sources WHERE name = $1");
    Ok(c.opt(&sql, &[&name]).await?.as_ref().map(source_row))
}
