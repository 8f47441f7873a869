# An object finalized in the uploads bucket -> a CloudEvent POSTed to ingest.
resource "google_eventarc_trigger" "uploads" {
  name     = "${var.name_prefix}-uploads"
  location = var.region # must be the bucket's region

  matching_criteria {
    attribute = "type"
    value     = "google.cloud.storage.object.v1.finalized"
  }

  matching_criteria {
    attribute = "bucket"
    value     = google_storage_bucket.uploads.name
  }

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.fn["ingest"].name
      region  = var.region
      path    = var.ingest_event_path
    }
  }

  service_account = google_service_account.eventarc.email

  depends_on = [
    google_project_iam_member.eventarc_receiver,
    google_project_iam_member.gcs_publishes_events,
    google_cloud_run_v2_service_iam_member.eventarc_invokes_ingest,
  ]
}

# An object deleted (or overwritten without versioning) -> the document is removed.
resource "google_eventarc_trigger" "uploads_deleted" {
  name     = "${var.name_prefix}-uploads-deleted"
  location = var.region

  matching_criteria {
    attribute = "type"
    value     = "google.cloud.storage.object.v1.deleted"
  }

  matching_criteria {
    attribute = "bucket"
    value     = google_storage_bucket.uploads.name
  }

  destination {
    cloud_run_service {
      service = google_cloud_run_v2_service.fn["ingest"].name
      region  = var.region
      path    = var.ingest_event_path
    }
  }

  service_account = google_service_account.eventarc.email

  depends_on = [
    google_project_iam_member.eventarc_receiver,
    google_project_iam_member.gcs_publishes_events,
    google_cloud_run_v2_service_iam_member.eventarc_invokes_ingest,
  ]
}
