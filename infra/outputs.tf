output "service_urls" {
  description = "Cloud Run URL of each function (sql-exec, retrieve, ingest, index-advisor accept internal traffic only)."
  value       = { for k, s in google_cloud_run_v2_service.fn : k => s.uri }
}

output "migrate_job" {
  description = "Name of the Cloud Run job that runs `quarry migrate`."
  value       = google_cloud_run_v2_job.migrate.name
}

output "chroma_url" {
  description = "Internal URL of Chroma (cloudbuild.yaml's _CHROMA_URL)."
  value       = local.chroma_url
}

output "database_private_ip" {
  description = "Private IP of the Cloud SQL instance."
  value       = google_sql_database_instance.main.private_ip_address
}

output "database_instance" {
  description = "Cloud SQL instance connection name."
  value       = google_sql_database_instance.main.connection_name
}

output "redis_host" {
  description = "Private address of Memorystore for Redis."
  value       = "${google_redis_instance.main.host}:${google_redis_instance.main.port}"
}

output "uploads_bucket" {
  description = "Bucket whose new objects are ingested."
  value       = google_storage_bucket.uploads.name
}

output "build_sources_bucket" {
  description = "Staging bucket for `gcloud builds submit --gcs-source-staging-dir`."
  value       = google_storage_bucket.build_sources.name
}

output "image_repository" {
  description = "Artifact Registry path the images are pushed to: <this>/<function>:<tag>."
  value       = "${google_artifact_registry_repository.images.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "network" {
  description = "VPC and subnet names for Direct VPC egress (cloudbuild.yaml's _NETWORK and _SUBNET)."
  value       = { network = google_compute_network.main.name, subnet = google_compute_subnetwork.run.name }
}

output "service_accounts" {
  description = "Service account email of each function, the migration job, the deployer, Eventarc and the scheduler."
  value = merge(
    { for k, sa in google_service_account.runtime : k => sa.email },
    {
      deployer  = google_service_account.deployer.email
      eventarc  = google_service_account.eventarc.email
      scheduler = google_service_account.scheduler.email
    },
  )
}

output "manual_secrets" {
  description = "Secrets created empty: add a version to each (used ones) before the services can start."
  value       = { for k, s in google_secret_manager_secret.manual : k => s.secret_id }
}
