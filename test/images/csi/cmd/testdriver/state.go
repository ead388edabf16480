package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// state is the driver's on-disk state: one directory per volume, one file
// per created volume holding its capacity and one file per attachment,
// naming the node. mu serialises all calls: this is
// test tooling, not a driver under load.
type state struct {
	mu  sync.Mutex
	dir string
}

func openState(dir string) (*state, error) {
	for _, sub := range []string{"volumes", "capacities", "attachments"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	return &state{dir: dir}, nil
}

// checkID refuses IDs that are not a single path element, since they name
// files under the state dir.
func checkID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return status.Errorf(codes.InvalidArgument, "invalid volume ID %q", id)
	}
	return nil
}

func (s *state) volumeDir(id string) string { return filepath.Join(s.dir, "volumes", id) }

func (s *state) attachmentFile(id string) string { return filepath.Join(s.dir, "attachments", id) }

func (s *state) capacityFile(id string) string { return filepath.Join(s.dir, "capacities", id) }

// capacity returns the recorded size of a volume and whether the volume
// exists. A volume directory made by hand (a static volume) has no record:
// its size is 0.
func (s *state) capacity(id string) (int64, bool, error) {
	if _, err := os.Stat(s.volumeDir(id)); errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, status.Error(codes.Internal, err.Error())
	}
	b, err := os.ReadFile(s.capacityFile(id))
	if errors.Is(err, os.ErrNotExist) {
		return 0, true, nil
	}
	if err != nil {
		return 0, true, status.Error(codes.Internal, err.Error())
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, true, status.Errorf(codes.Internal, "capacity record of %q: %v", id, err)
	}
	return n, true, nil
}

func (s *state) setCapacity(id string, bytes int64) error {
	if err := os.WriteFile(s.capacityFile(id), []byte(strconv.FormatInt(bytes, 10)), 0o644); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return nil
}

// volumeExists is NotFound for an unknown volume, as the spec asks.
func (s *state) volumeExists(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if _, err := os.Stat(s.volumeDir(id)); errors.Is(err, os.ErrNotExist) {
		return status.Errorf(codes.NotFound, "volume %q does not exist", id)
	} else if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return nil
}

// attachedTo returns the node a volume is attached to, or "".
func (s *state) attachedTo(id string) (string, error) {
	b, err := os.ReadFile(s.attachmentFile(id))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", status.Error(codes.Internal, err.Error())
	}
	return string(b), nil
}

// allocated is the sum of the recorded sizes of the created volumes.
func (s *state) allocated() (int64, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "capacities"))
	if err != nil {
		return 0, status.Error(codes.Internal, err.Error())
	}
	var sum int64
	for _, e := range entries {
		n, _, err := s.capacity(e.Name())
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}
