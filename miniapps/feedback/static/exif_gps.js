// The GPS position a JPEG photo carries in its EXIF data, read in the browser so the report form can
// show the place (and the ward it falls in) before sending. The server reads it again on its own.
window.exifGps = function (buffer) {
  const view = new DataView(buffer);
  if (view.byteLength < 4 || view.getUint16(0) !== 0xFFD8) return null;  // not a JPEG
  let offset = 2;
  while (offset + 4 <= view.byteLength) {
    const marker = view.getUint16(offset), size = view.getUint16(offset + 2);
    if (marker === 0xFFE1 && view.getUint32(offset + 4) === 0x45786966) return tiff(offset + 10);
    if ((marker & 0xFF00) !== 0xFF00 || marker === 0xFFDA) return null;  // image data: no EXIF before it
    offset += 2 + size;
  }
  return null;

  function tiff(start) {
    const little = view.getUint16(start) === 0x4949;
    const u16 = at => view.getUint16(at, little), u32 = at => view.getUint32(at, little);
    const entries = (ifd) => {
      const found = {};
      if (ifd + 2 > view.byteLength) return found;
      for (let i = 0, n = u16(ifd); i < n; i++) {
        const entry = ifd + 2 + i * 12;
        if (entry + 12 > view.byteLength) break;
        found[u16(entry)] = {type: u16(entry + 2), count: u32(entry + 4), value: entry + 8};
      }
      return found;
    };
    const ifd0 = entries(start + u32(start + 4));
    if (!ifd0[0x8825]) return null;
    const gps = entries(start + u32(ifd0[0x8825].value));
    const degrees = (tag) => {
      if (!tag || tag.type !== 5 || tag.count !== 3) return null;
      const data = start + u32(tag.value);
      const part = k => u32(data + k * 8) / (u32(data + k * 8 + 4) || 1);
      return part(0) + part(1) / 60 + part(2) / 3600;
    };
    const ref = (tag) => tag ? String.fromCharCode(view.getUint8(tag.value)) : "";
    let lat = degrees(gps[2]), lon = degrees(gps[4]);
    if (lat === null || lon === null) return null;
    if (ref(gps[1]) === "S") lat = -lat;
    if (ref(gps[3]) === "W") lon = -lon;
    return [lat, lon];
  }
};
