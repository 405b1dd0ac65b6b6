package store

import "gorm.io/gorm"

// GormDB is the store's database handle, for tests that look at rows the API
// does not show or set up states it cannot reach.
func (s *Store) GormDB() *gorm.DB { return s.db }
