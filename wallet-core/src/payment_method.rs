//! Payment methods: kinds, statuses, masked display data and the validation that keeps card
//! numbers out of the store.
