package io.paystream.deploy;

/**
 * A container image reference: {@code name[:tag][@digest]}, where a colon before the last slash belongs to a
 * registry's port, not a tag.
 */
record ImageReference(String name, String tag, String digest) {

    static ImageReference parse(String image) {
        if (image == null || image.isBlank()) {
            throw new IllegalStateException("a container has no image");
        }
        String rest = image;
        String digest = null;
        int at = rest.indexOf('@');
        if (at >= 0) {
            digest = rest.substring(at + 1);
            rest = rest.substring(0, at);
        }
        String tag = null;
        int colon = rest.lastIndexOf(':');
        if (colon > rest.lastIndexOf('/')) {
            tag = rest.substring(colon + 1);
            rest = rest.substring(0, colon);
        }
        return new ImageReference(rest, tag, digest);
    }

    /** Pinned: a digest, or a tag other than {@code latest}. */
    boolean pinned() {
        return digest != null || (tag != null && !tag.isBlank() && !"latest".equalsIgnoreCase(tag));
    }
}
