"""What the service keeps on disk and records: model versions with their bundles and reports
(``bundles``), the photos users send (``photos``), and the base dataset's test images
(``dataset_images``)."""
