package mote

import "time"

// ObjectBucket is a handle on an object bucket. Through host calls an
// object moves whole up to the platform's per-call cap (8 MiB by
// default); read larger ones in ranges with GetRange, and write them
// through the HTTP API.
type ObjectBucket struct{ Name string }

// Objects returns a handle on the object bucket name.
func Objects(name string) ObjectBucket { return ObjectBucket{Name: name} }

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Size        int64
	SHA256      string // hex
	ContentType string
	Modified    time.Time
}

// Put stores data at key and returns its size and SHA-256.
func (b ObjectBucket) Put(key string, data []byte, contentType string) (ObjectInfo, error) {
	res, err := Call(OpObjPut, []byte(b.Name), []byte(key), data, []byte(contentType))
	if err != nil {
		return ObjectInfo{}, err
	}
	args, err := parseList(res, 2)
	if err != nil {
		return ObjectInfo{}, err
	}
	size, err := parseDec(args[0])
	return ObjectInfo{Size: size, SHA256: string(args[1]), ContentType: contentType}, err
}

// Get returns the whole object at key.
func (b ObjectBucket) Get(key string) ([]byte, error) {
	return Call(OpObjGet, []byte(b.Name), []byte(key))
}

// GetRange returns length bytes of the object from offset (length < 0: to
// the end).
func (b ObjectBucket) GetRange(key string, offset, length int64) ([]byte, error) {
	var l []byte
	if length >= 0 {
		l = decArg(length)
	}
	return Call(OpObjGet, []byte(b.Name), []byte(key), decArg(offset), l)
}

// Head returns the object's info.
func (b ObjectBucket) Head(key string) (ObjectInfo, error) {
	res, err := Call(OpObjHead, []byte(b.Name), []byte(key))
	if err != nil {
		return ObjectInfo{}, err
	}
	args, err := parseList(res, 4)
	if err != nil {
		return ObjectInfo{}, err
	}
	size, err := parseDec(args[0])
	if err != nil {
		return ObjectInfo{}, err
	}
	ms, err := parseDec(args[3])
	return ObjectInfo{Size: size, SHA256: string(args[1]), ContentType: string(args[2]),
		Modified: time.UnixMilli(ms)}, err
}

// Delete removes the object at key.
func (b ObjectBucket) Delete(key string) error {
	_, err := Call(OpObjDelete, []byte(b.Name), []byte(key))
	return err
}

// List returns up to limit object keys starting with prefix after cursor,
// and the next page's cursor ("" at the end).
func (b ObjectBucket) List(prefix, cursor string, limit int) (keys []string, next string, err error) {
	res, err := Call(OpObjList, []byte(b.Name), []byte(prefix), []byte(cursor), decArg(int64(limit)))
	if err != nil {
		return nil, "", err
	}
	return decodeKeyList(res)
}
