"""What a run hands its readers: the MIoU tables, figures, the report and the realism check,
the export folder with its model card, and the cost plan."""
