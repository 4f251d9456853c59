package storage

import (
	"fmt"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// putReservation writes an open reservation.
func putReservation(tx *bolt.Tx, res budget.Reservation) error {
	return putJSON(tx.Bucket(bucketReservations), []byte(res.ID), res)
}

// getReservation reads the open reservation id; ok is false when there is
// none.
func getReservation(tx *bolt.Tx, id string) (res budget.Reservation, ok bool, err error) {
	v := tx.Bucket(bucketReservations).Get([]byte(id))
	if v == nil {
		return res, false, nil
	}
	res, err = decodeReservation([]byte(id), v, false)
	return res, err == nil, err
}

// decodeReservation decodes a reservation entry; strict refuses what Check
// refuses (see decodeStrict).
func decodeReservation(k, v []byte, strict bool) (budget.Reservation, error) {
	var res budget.Reservation
	if err := decodeEntry(v, &res, strict); err != nil {
		return budget.Reservation{}, fmt.Errorf("storage: reservation %s: %w", k, err)
	}
	return res, nil
}
