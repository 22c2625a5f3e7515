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
        let owner = owner.to_owned();
        let spec = serde_json::to_string(dag)
            .map_err(|e| Error::Invalid(format!("cannot encode JSON: {e}")))?;
        let tags = to_value(&dag.tags)?;
        let (dag, file, source, hash) = (
            dag.clone(),
            file.to_owned(),
            source.to_owned(),
            hash.to_owned(),
        );
        self.write(move |tx| {
            Box::pin(async move {
                let id = dag.id.as_str();
                let max_active_runs = i32_of(dag.max_active_runs);
                let paused = dag.is_paused_upon_creation.unwrap_or(false);
                // Serialise definitions of one DAG id, so two processors cannot both
                // pass the duplicate check.
                tx.exec("SELECT pg_advisory_xact_lock(hashtext($1))", &[&id])
                    .await?;
                if let Some(other) = tx
                    .opt(
                        "SELECT file FROM dags WHERE dag_id = $1 AND active AND file <> $2",
                        &[&id, &file],
                    )
                    .await?
                {
                    let other: String = other.get(0);
                    return Err(duplicate_dag_id(id, &other));
                }
                let new_version = tx
                    .exec(
                        "INSERT INTO dag_versions (dag_id, version_hash, file, source, spec, created_at)
                         VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT DO NOTHING",
                        &[&id, &hash, &file, &source, &spec],
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
                        &file,
                        &hash,
                        &dag.schedule,
                        &dag.timezone,
                        &max_active_runs,
                        &dag.description,
                        &tags,
                        &owner,
                        &paused,
                    ],
                )
                .await?;
                // A file defines one DAG: one it defined under another id is gone.
                tx.exec(
                    "UPDATE dags SET active = false, updated_at = now()
                     WHERE file = $1 AND dag_id <> $2 AND active",
                    &[&file, &id],
                )
                .await?;
                tx.exec("DELETE FROM import_errors WHERE file = $1", &[&file])
                    .await?;
                Ok(new_version)
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

    async fn get_version(&self, dag_id: &DagId, hash: &str) -> Result<Option<DagVersion>> {
        let (id, hash) = (dag_id.0.clone(), hash.to_owned());
        self.single(move |c| {
            Box::pin(async move {
                let Some(r) = c
                    .opt(
                        "SELECT file, source, spec, created_at FROM dag_versions
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
                        "SELECT version_hash, file, created_at FROM dag_versions
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
                let mut deleted = DagDeleted {
                    file: row.get(0),
                    file_present: row.get(1),
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
