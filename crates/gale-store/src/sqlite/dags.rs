//! The SQLite backend's `impl Dags for SqliteStore`: DAG versions, import errors, file sync and pausing.

use super::*;

#[async_trait]
impl Dags for SqliteStore {
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
            if let Some(refusal) = refusal_of(tx, &version, &owner)? {
                return Err(refusal);
            }
            Ok(store_version(tx, &version, &owner, &origin)?.new_version)
        })
        .await
    }

    async fn push_dags(&self, versions: &[NewVersion], by: &str) -> Result<Vec<Stored>> {
        let versions = versions.to_vec();
        let origin = Origin::Push { by: by.to_owned() };
        self.write(move |tx| {
            for v in &versions {
                if let Some(refusal) = refusal_of(tx, v, PUSH_OWNER)? {
                    return Err(refusal);
                }
            }
            versions
                .iter()
                .map(|v| store_version(tx, v, PUSH_OWNER, &origin))
                .collect()
        })
        .await
    }

    async fn register_git_source(&self, spec: &GitSourceSpec) -> Result<SourceRow> {
        let spec = spec.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO dag_sources (name, url, reference, path, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
                params![spec.name, spec.url, spec.reference, spec.path, now_us()],
            )
            .map_err(map_err)?;
            let row = source_by_name(tx, &spec.name)?
                .ok_or_else(|| Error::Database(format!("git source {} vanished", spec.name)))?;
            check_same_source(&spec, &row)?;
            Ok(row)
        })
        .await
    }

    async fn get_source(&self, name: &str) -> Result<Option<SourceRow>> {
        let name = name.to_owned();
        self.call(move |conn| source_by_name(conn, &name)).await
    }

    async fn list_sources(&self) -> Result<Vec<SourceRow>> {
        self.call(|conn| {
            query_all(
                conn,
                &format!("SELECT {SOURCE_COLS} FROM dag_sources ORDER BY name"),
                [],
                source_row,
            )
        })
        .await
    }

    async fn request_refresh(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.write(move |tx| {
            Ok(tx
                .execute(
                    "UPDATE dag_sources SET refresh_requested_at = ?2 WHERE name = ?1",
                    params![name, now_us()],
                )
                .map_err(map_err)?
                > 0)
        })
        .await
    }

    async fn apply_git_commit(&self, commit: &GitCommit) -> Result<GitApplied> {
        let commit = commit.clone();
        self.write(move |tx| {
            let current: Option<Option<String>> = tx
                .query_row(
                    "SELECT commit_id FROM dag_sources WHERE name = ?1",
                    params![commit.source],
                    |r| r.get(0),
                )
                .optional()
                .map_err(map_err)?;
            let Some(current) = current else {
                return Err(Error::Invalid(format!(
                    "no git source {} is registered",
                    commit.source
                )));
            };
            if current != commit.expected {
                return Ok(GitApplied::Stale(current));
            }
            let owner = git_owner(&commit.source);
            let origin = Origin::Git {
                source: commit.source.clone(),
                commit: commit.commit.clone(),
            };
            let now = now_us();
            let mut stored = Vec::new();
            let mut refused = Vec::new();
            for v in &commit.versions {
                match refusal_of(tx, v, &owner)? {
                    Some(refusal) => {
                        refused.push((v.file.clone(), v.dag.id.clone(), refusal.to_string()))
                    }
                    None => stored.push(store_version(tx, v, &owner, &origin)?),
                }
            }
            // The source's DAGs this commit does not have are gone; one
            // whose file is broken in it keeps its last good version.
            let kept: HashSet<&str> = stored.iter().map(|s| s.dag_id.as_str()).collect();
            let broken: HashSet<&str> = commit.errors.iter().map(|(f, _)| f.as_str()).collect();
            let mine = query_all(
                tx,
                "SELECT dag_id, file FROM dags WHERE owner = ?1 AND active = 1",
                params![owner],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )?;
            let mut retired = Vec::new();
            for (dag_id, _) in mine
                .into_iter()
                .filter(|(d, f)| !kept.contains(d.as_str()) && !broken.contains(f.as_str()))
            {
                tx.execute(
                    "UPDATE dags SET active = 0, updated_at = ?2 WHERE dag_id = ?1",
                    params![dag_id, now],
                )
                .map_err(map_err)?;
                retired.push(DagId(dag_id));
            }
            // The commit's import errors replace the source's; one that is
            // the same as before keeps its row (and when it was reported).
            let errors = git_import_errors(&commit, &refused);
            let files: HashSet<&str> = errors.iter().map(|(f, _, _)| f.as_str()).collect();
            let recorded = query_all(
                tx,
                "SELECT file FROM import_errors WHERE owner = ?1",
                params![owner],
                |r| r.get::<_, String>(0),
            )?;
            for file in recorded.iter().filter(|f| !files.contains(f.as_str())) {
                tx.execute("DELETE FROM import_errors WHERE file = ?1", params![file])
                    .map_err(map_err)?;
            }
            for (file, dag_id, errors) in &errors {
                tx.execute(
                    "INSERT INTO import_errors (file, dag_id, errors, updated_at, owner)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (file) DO UPDATE SET dag_id = ?2, errors = ?3, updated_at = ?4,
                         owner = ?5
                     WHERE errors <> excluded.errors OR owner <> excluded.owner
                         OR dag_id IS NOT excluded.dag_id",
                    params![file, dag_id, to_json(errors)?, now, owner],
                )
                .map_err(map_err)?;
            }
            tx.execute(
                "UPDATE dag_sources SET commit_id = ?2, committed_at = ?3, applied_at = ?4,
                     applied_by = ?5
                 WHERE name = ?1",
                params![
                    commit.source,
                    commit.commit,
                    commit.committed_at.as_microsecond(),
                    now,
                    commit.by
                ],
            )
            .map_err(map_err)?;
            Ok(GitApplied::Applied {
                stored,
                refused,
                retired,
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
        let text = to_json(&errors)?;
        let (file, dag_id, owner) = (file.to_owned(), dag_id.map(str::to_owned), owner.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO import_errors (file, dag_id, errors, updated_at, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (file) DO UPDATE SET dag_id = ?2, errors = ?3, updated_at = ?4,
                     owner = ?5",
                params![file, dag_id, text, now_us(), owner],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn sync_files(&self, owner: &str, present: &[String]) -> Result<Vec<String>> {
        let present: HashSet<String> = present.iter().cloned().collect();
        let owner = owner.to_owned();
        self.write(move |tx| {
            let gone = |sql: &str| -> Result<Vec<String>> {
                let mut stmt = tx.prepare_cached(sql).map_err(map_err)?;
                let files = stmt
                    .query_map(params![owner], |r| r.get::<_, String>(0))
                    .map_err(map_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(map_err)?;
                Ok(files.into_iter().filter(|f| !present.contains(f)).collect())
            };
            let now = now_us();
            for file in gone("SELECT file FROM dags WHERE active = 1 AND owner IN (?1, '')")? {
                tx.execute(
                    "UPDATE dags SET active = 0, updated_at = ?2
                     WHERE file = ?1 AND active = 1 AND owner IN (?3, '')",
                    params![file, now, owner],
                )
                .map_err(map_err)?;
            }
            for file in gone("SELECT file FROM import_errors WHERE owner IN (?1, '')")? {
                tx.execute("DELETE FROM import_errors WHERE file = ?1", params![file])
                    .map_err(map_err)?;
            }
            let known: HashSet<String> = query_all(
                tx,
                "SELECT file FROM dags UNION SELECT file FROM import_errors",
                [],
                |r| r.get::<_, String>(0),
            )?
            .into_iter()
            .collect();
            let mut unknown: Vec<String> = present.difference(&known).cloned().collect();
            unknown.sort();
            Ok(unknown)
        })
        .await
    }

    async fn drop_import_errors(&self, owner: &str) -> Result<()> {
        let owner = owner.to_owned();
        self.write(move |tx| {
            tx.execute("DELETE FROM import_errors WHERE owner = ?1", params![owner])
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn dag_page(&self, q: &DagQuery) -> Result<DagPage> {
        let q = q.clone();
        self.call(move |conn| {
            // One WHERE for the page and its count: ?1 pattern, ?2 tag,
            // ?3 paused, ?4 removed ones too (NULL: no filter).
            let filter = "(?4 OR active = 1)
                 AND (?3 IS NULL OR paused = ?3)
                 AND (?1 IS NULL OR lower(dag_id) LIKE ?1 ESCAPE '\\'
                      OR lower(coalesce(description, '')) LIKE ?1 ESCAPE '\\')
                 AND (?2 IS NULL OR EXISTS (SELECT 1 FROM json_each(dags.tags) WHERE value = ?2))";
            let pattern = q.like_pattern();
            let args = params![pattern, q.tag, q.paused, q.include_inactive];
            let matched: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM dags WHERE {filter}"),
                    args,
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
            let dags = query_all(
                conn,
                &format!(
                    "SELECT {DAG_COLS} FROM dags WHERE {filter} ORDER BY dag_id LIMIT ?5 OFFSET ?6"
                ),
                params![
                    pattern,
                    q.tag,
                    q.paused,
                    q.include_inactive,
                    q.page_size(),
                    offset
                ],
                dag_row,
            )?;
            let (active, paused): (i64, i64) = conn
                .query_row(
                    "SELECT count(*), coalesce(sum(paused), 0) FROM dags WHERE active = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(map_err)?;
            Ok(DagPage {
                dags,
                matched: u64::try_from(matched).unwrap_or(0),
                active: u64::try_from(active).unwrap_or(0),
                paused: u64::try_from(paused).unwrap_or(0),
            })
        })
        .await
    }

    async fn dag_tags(&self) -> Result<Vec<String>> {
        self.call(|conn| {
            query_all(
                conn,
                "SELECT DISTINCT j.value FROM dags, json_each(dags.tags) j
                 WHERE dags.active = 1 ORDER BY 1",
                [],
                |r| r.get::<_, String>(0),
            )
        })
        .await
    }

    async fn dags_changed_since(&self, since: Timestamp) -> Result<Vec<DagRow>> {
        self.call(move |conn| {
            query_all(
                conn,
                &format!("SELECT {DAG_COLS} FROM dags WHERE updated_at >= ?1 ORDER BY updated_at"),
                params![to_micros(since)],
                dag_row,
            )
        })
        .await
    }

    async fn list_dags(&self) -> Result<Vec<DagRow>> {
        self.call(|conn| {
            query_all(
                conn,
                &format!("SELECT {DAG_COLS} FROM dags ORDER BY dag_id"),
                [],
                dag_row,
            )
        })
        .await
    }

    async fn get_dag(&self, dag_id: &DagId) -> Result<Option<DagRow>> {
        let dag_id = dag_id.0.clone();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {DAG_COLS} FROM dags WHERE dag_id = ?1"),
                params![dag_id],
                dag_row,
            )
            .optional()
            .map_err(map_err)
        })
        .await
    }

    async fn get_dags(&self, dags: &[DagId]) -> Result<Vec<DagRow>> {
        if dags.is_empty() {
            return Ok(Vec::new());
        }
        let ids = name_list(dags)?;
        self.call(move |conn| {
            query_all(
                conn,
                &format!(
                    "SELECT {DAG_COLS} FROM dags WHERE dag_id IN (SELECT value FROM json_each(?1))
                     ORDER BY dag_id"
                ),
                params![ids],
                dag_row,
            )
        })
        .await
    }

    async fn get_version(&self, dag_id: &DagId, hash: &str) -> Result<Option<DagVersion>> {
        let (dag_id, hash) = (dag_id.0.clone(), hash.to_owned());
        self.call(move |conn| {
            let row: Option<(String, String, String, i64, String)> = conn
                .query_row(
                    "SELECT file, source, spec, created_at, origin FROM dag_versions
                     WHERE dag_id = ?1 AND version_hash = ?2",
                    params![dag_id, hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()
                .map_err(map_err)?;
            let Some((file, source, spec, created_at, origin)) = row else {
                return Ok(None);
            };
            let spec: Dag = serde_json::from_str(&spec).map_err(|e| {
                Error::Database(format!(
                    "stored DAG version {dag_id}@{hash} is unreadable: {e}"
                ))
            })?;
            Ok(Some(DagVersion {
                dag_id: DagId(dag_id),
                version_hash: hash,
                file,
                source,
                spec,
                created_at: ts(created_at),
                origin: Origin::from_text(&origin),
            }))
        })
        .await
    }

    async fn list_versions(&self, dag_id: &DagId) -> Result<Vec<VersionInfo>> {
        let dag_id = dag_id.0.clone();
        self.call(move |conn| {
            query_all(
                conn,
                "SELECT version_hash, file, created_at, origin FROM dag_versions
                 WHERE dag_id = ?1 ORDER BY created_at DESC, version_hash",
                params![dag_id],
                |r| {
                    Ok(VersionInfo {
                        version_hash: r.get(0)?,
                        file: r.get(1)?,
                        created_at: ts(r.get(2)?),
                        origin: Origin::from_text(&r.get::<_, String>(3)?),
                    })
                },
            )
        })
        .await
    }

    async fn list_import_errors(&self) -> Result<Vec<ImportError>> {
        self.call(|conn| {
            query_all(
                conn,
                "SELECT file, dag_id, errors, updated_at FROM import_errors ORDER BY file",
                [],
                |r| {
                    Ok(ImportError {
                        file: r.get(0)?,
                        dag_id: r.get(1)?,
                        errors: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                        updated_at: ts(r.get(3)?),
                    })
                },
            )
        })
        .await
    }

    async fn delete_dag(&self, dag_id: &DagId, what: DagDeletion) -> Result<DeleteDag> {
        let dag_id = dag_id.0.clone();
        self.write_large(move |tx| {
            let row: Option<(String, bool)> = tx
                .query_row(
                    "SELECT file, active FROM dags WHERE dag_id = ?1",
                    params![dag_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(map_err)?;
            let Some((file, active)) = row else {
                return Ok(DeleteDag::NotFound);
            };
            // A pushed DAG has no file anything scans.
            let file_present = active && !file.starts_with("push:");
            let unfinished = query_all(
                tx,
                "SELECT id FROM runs WHERE dag_id = ?1 AND state IN ('queued', 'running')
                 ORDER BY id LIMIT 20",
                params![dag_id],
                |r| Ok(RunId(r.get(0)?)),
            )?;
            if !unfinished.is_empty() {
                return Ok(DeleteDag::Unfinished(unfinished));
            }
            let mut deleted = DagDeleted {
                file,
                file_present,
                ..DagDeleted::default()
            };
            if what == DagDeletion::Everything {
                let count = |sql: &str| -> Result<u64> {
                    Ok(tx.execute(sql, params![dag_id]).map_err(map_err)? as u64)
                };
                deleted.log_lines = count(
                    "DELETE FROM logs WHERE ti_id IN (SELECT id FROM task_instances WHERE dag_id = ?1)",
                )?;
                deleted.attempts = count(
                    "DELETE FROM attempts WHERE ti_id IN (SELECT id FROM task_instances WHERE dag_id = ?1)",
                )?;
                deleted.task_instances = count("DELETE FROM task_instances WHERE dag_id = ?1")?;
                deleted.runs = count("DELETE FROM runs WHERE dag_id = ?1")?;
                deleted.backfills = count("DELETE FROM backfills WHERE dag_id = ?1")?;
                count("DELETE FROM schedule_slots WHERE dag_id = ?1")?;
                count("DELETE FROM dag_versions WHERE dag_id = ?1")?;
            }
            tx.execute("DELETE FROM dags WHERE dag_id = ?1", params![dag_id])
                .map_err(map_err)?;
            Ok(DeleteDag::Deleted(deleted))
        })
        .await
    }

    async fn set_paused(&self, dag_id: &DagId, paused: bool) -> Result<bool> {
        let dag_id = dag_id.0.clone();
        self.write(move |tx| {
            Ok(tx
                .execute(
                    "UPDATE dags SET paused = ?2, updated_at = ?3 WHERE dag_id = ?1",
                    params![dag_id, paused, now_us()],
                )
                .map_err(map_err)?
                > 0)
        })
        .await
    }
}

/// Why `owner` may not store `v`: the active row that has its DAG id
/// (its file and owner) judged by `refuse_claim`.
fn refusal_of(tx: &Connection, v: &NewVersion, owner: &str) -> Result<Option<Error>> {
    let held: Option<(String, String)> = tx
        .query_row(
            "SELECT file, owner FROM dags WHERE dag_id = ?1 AND active = 1",
            params![v.dag.id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(map_err)?;
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
fn store_version(tx: &Connection, v: &NewVersion, owner: &str, origin: &Origin) -> Result<Stored> {
    let now = now_us();
    let id = v.dag.id.as_str();
    let before: Option<String> = tx
        .query_row(
            "SELECT version_hash FROM dags WHERE dag_id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    let new_version = tx
        .execute(
            "INSERT OR IGNORE INTO dag_versions (dag_id, version_hash, file, source, spec, created_at,
                 origin)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, v.hash, v.file, v.source, to_json(&v.dag)?, now, origin.to_text()],
        )
        .map_err(map_err)?
        > 0;
    tx.execute(
        "INSERT INTO dags (dag_id, file, version_hash, paused, active, schedule, timezone,
             max_active_runs, description, tags, created_at, updated_at, owner)
         VALUES (?1, ?2, ?3, ?11, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)
         ON CONFLICT (dag_id) DO UPDATE SET file = ?2, version_hash = ?3, active = 1,
             schedule = ?4, timezone = ?5, max_active_runs = ?6, description = ?7,
             tags = ?8, updated_at = ?9, owner = ?10",
        params![
            id,
            v.file,
            v.hash,
            v.dag.schedule,
            v.dag.timezone,
            v.dag.max_active_runs,
            v.dag.description,
            to_json(&v.dag.tags)?,
            now,
            owner,
            v.dag.is_paused_upon_creation.unwrap_or(false)
        ],
    )
    .map_err(map_err)?;
    if OwnerKind::of(owner) == OwnerKind::Folder {
        tx.execute(
            "UPDATE dags SET active = 0, updated_at = ?3
             WHERE file = ?1 AND dag_id <> ?2 AND active = 1",
            params![v.file, id, now],
        )
        .map_err(map_err)?;
    }
    tx.execute("DELETE FROM import_errors WHERE file = ?1", params![v.file])
        .map_err(map_err)?;
    Ok(Stored {
        dag_id: v.dag.id.clone(),
        version_hash: v.hash.clone(),
        new_version,
        changed: before.as_deref() != Some(v.hash.as_str()),
    })
}

const SOURCE_COLS: &str = "name, url, reference, path, commit_id, committed_at, applied_at, \
     applied_by, refresh_requested_at, created_at";

fn source_row(r: &Row) -> rusqlite::Result<SourceRow> {
    Ok(SourceRow {
        name: r.get(0)?,
        url: r.get(1)?,
        reference: r.get(2)?,
        path: r.get(3)?,
        commit: r.get(4)?,
        committed_at: opt_ts(r.get(5)?),
        applied_at: opt_ts(r.get(6)?),
        applied_by: r.get(7)?,
        refresh_requested_at: opt_ts(r.get(8)?),
        created_at: ts(r.get(9)?),
    })
}

fn source_by_name(conn: &Connection, name: &str) -> Result<Option<SourceRow>> {
    conn.query_row(
        &format!("SELECT {SOURCE_COLS} FROM dag_sources WHERE name = ?1"),
        params![name],
        source_row,
    )
    .optional()
    .map_err(map_err)
}
