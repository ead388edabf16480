package main

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Clones. A volume made from another (VolumeContentSource.Volume) starts
// as a copy of the source's directory. Block volumes are not cloned: their
// data lives in a sparse backing file that a copy would fill, and may be
// attached to a loop device being written.

// cloneDir is where a clone is assembled before it is renamed into place,
// so that a volume directory is never a half-finished copy.
func (s *state) cloneDir(id string) string { return filepath.Join(s.dir, "clones", id) }

// checkCloneSource returns the ID of the volume req clones, or "" when it
// has no content source; it refuses snapshots, block volumes and a
// request smaller than the source. Called with s.mu held.
func (s *state) checkCloneSource(req *csi.CreateVolumeRequest, want int64) (string, error) {
	cs := req.GetVolumeContentSource()
	if cs == nil {
		return "", nil
	}
	if cs.GetSnapshot() != nil || cs.GetVolume() == nil {
		return "", status.Error(codes.InvalidArgument, "only volume content sources (clones) are supported")
	}
	src := cs.GetVolume().GetVolumeId()
	if err := s.volumeExists(src); err != nil {
		return "", err
	}
	for _, c := range req.GetVolumeCapabilities() {
		if c.GetBlock() != nil {
			return "", status.Error(codes.InvalidArgument, "cloning block volumes is not supported")
		}
	}
	if _, err := os.Stat(s.blockFile(src)); err == nil {
		return "", status.Errorf(codes.InvalidArgument, "volume %q is a block volume: cloning block volumes is not supported", src)
	}
	size, _, err := s.capacity(src)
	if err != nil {
		return "", err
	}
	if want < size {
		return "", status.Errorf(codes.OutOfRange, "requested %d bytes, less than the %d bytes of source volume %q", want, size, src)
	}
	return src, nil
}

// cloneVolume makes volume id's directory a copy of src's.
func (s *state) cloneVolume(src, id string) error {
	tmp := s.cloneDir(id)
	if err := os.RemoveAll(tmp); err != nil { // a crashed attempt's
		return status.Error(codes.Internal, err.Error())
	}
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	if err := copyTree(s.volumeDir(src), tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return status.Errorf(codes.Internal, "copying volume %q: %v", src, err)
	}
	if err := os.Rename(tmp, s.volumeDir(id)); err != nil {
		_ = os.RemoveAll(tmp)
		return status.Error(codes.Internal, err.Error())
	}
	return nil
}

// copyTree copies directories, regular files and symlinks from src to
// dst (which must not exist), keeping permission bits. Ownership is not
// kept: the driver runs as root and the tests' data is root's.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			// Set after the walk would be exact for read-only dirs; the
			// copy only needs to write into it first.
			return os.Chmod(target, mode.Perm()|0o700)
		case mode.IsRegular():
			return copyFile(path, target, mode.Perm())
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		default:
			return errors.New("cannot copy " + path + ": not a file, directory or symlink")
		}
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
