package admin

import (
	"slices"

	"github.com/hardcap/hardcap/budget"
)

// CSVHeader returns the column names of the usage CSV (`hardcap usage
// --csv`, GET /admin/v1/usage?format=csv), for a reader that writes a
// selection of records in the same columns (the dashboard's export of one
// model's records).
func CSVHeader() []string { return slices.Clone(csvHeader) }

// CSVRecord returns a usage record's row in CSVHeader's columns.
func CSVRecord(r budget.Record) []string { return csvRow(r) }
