# Service accounts, one per function (plus the migration job), each with only what it uses:
#   - secretAccessor on exactly the secrets mounted into it (services.tf), nothing project-wide;
#   - ingest: objectViewer on the uploads bucket only;
#   - no roles/cloudsql.client: the functions reach Cloud SQL by private IP with a password (the
#     role is only needed for the Cloud SQL Auth Proxy / connectors, which Quarry does not use).
# Invokers: the Eventarc trigger's account on ingest, the Cloud Scheduler account on index-advisor.
# Cloud Build runs as its own deployer account.

locals {
  runtime_accounts = concat(keys(local.functions), ["migrate"])

  secret_access = merge(
    {
      for pair in flatten([
        for fn, f in local.functions : [
          for env_name, secret in f.secret_env : { account = fn, secret = secret }
        ]
      ]) : "${pair.account}/${pair.secret}" => pair
    },
    {
      for secret in ["database-url", "app-database-url"] :
      "migrate/${secret}" => { account = "migrate", secret = secret }
    },
  )

  secret_resource_ids = merge(
    { for k, s in google_secret_manager_secret.generated : k => s.id },
    { for k, s in google_secret_manager_secret.manual : k => s.id },
  )
}

resource "google_service_account" "runtime" {
  for_each = toset(local.runtime_accounts)

  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "Quarry ${each.key}"
  description  = "Runtime identity of the Quarry ${each.key} ${each.key == "migrate" ? "job" : "function"}."

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "runtime" {
  for_each = local.secret_access

  secret_id = local.secret_resource_ids[each.value.secret]
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.runtime[each.value.account].member
}

# ingest reads the uploaded objects it is told about.
resource "google_storage_bucket_iam_member" "ingest_reads_uploads" {
  bucket = google_storage_bucket.uploads.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.runtime["ingest"].member
}

# ------------------------------------------------------------------------------ Eventarc
resource "google_service_account" "eventarc" {
  account_id   = "${var.name_prefix}-eventarc"
  display_name = "Quarry Eventarc trigger"
  description  = "Delivers uploads-bucket events to the ingest function."

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "eventarc_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.eventarc.member
}

resource "google_cloud_run_v2_service_iam_member" "eventarc_invokes_ingest" {
  name     = google_cloud_run_v2_service.fn["ingest"].name
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.eventarc.member
}

# Cloud Storage publishes its events through Pub/Sub: its service agent needs publisher.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

resource "google_project_iam_member" "gcs_publishes_events" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = data.google_storage_project_service_account.gcs.member
}

# Needed by projects created before April 2021 (harmless on newer ones): Pub/Sub mints the
# OIDC tokens of push subscriptions.
resource "google_project_iam_member" "pubsub_token_creator" {
  project = var.project_id
  role    = "roles/iam.serviceAccountTokenCreator"
  member  = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  depends_on = [google_project_service.apis]
}

# ------------------------------------------------------------------------------ Scheduler
resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Quarry scheduler"
  description  = "Calls index-advisor nightly with an OIDC token."

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_advisor" {
  name     = google_cloud_run_v2_service.fn["index-advisor"].name
  location = var.region
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# ------------------------------------------------------------------------------ Chroma VM
resource "google_service_account" "chroma" {
  account_id   = "${var.name_prefix}-chroma"
  display_name = "Quarry Chroma VM"
  description  = "Identity of the Chroma VM: writes its logs and metrics, nothing else."

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "chroma" {
  for_each = toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"])

  project = var.project_id
  role    = each.value
  member  = google_service_account.chroma.member
}

# ------------------------------------------------------------------------------ Cloud Build
resource "google_service_account" "deployer" {
  account_id   = "${var.name_prefix}-deployer"
  display_name = "Quarry deployer (Cloud Build)"
  description  = "Runs cloudbuild.yaml: pushes images, runs the migration job, deploys the services."

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "deployer" {
  for_each = toset(["roles/run.developer", "roles/logging.logWriter"])

  project = var.project_id
  role    = each.value
  member  = google_service_account.deployer.member
}

# Deploying a service or job "as" a runtime account requires actAs on it.
resource "google_service_account_iam_member" "deployer_acts_as_runtime" {
  for_each = google_service_account.runtime

  service_account_id = each.value.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.deployer.member
}

resource "google_artifact_registry_repository_iam_member" "deployer_pushes" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.deployer.member
}

resource "google_storage_bucket_iam_member" "deployer_reads_sources" {
  bucket = google_storage_bucket.build_sources.name
  role   = "roles/storage.objectAdmin"
  member = google_service_account.deployer.member
}
