#!/bin/sh
# The tablet's USB serial gadget for enrolment mode (CDC ACM), through configfs.
#
#   usb-gadget-setup.sh start | stop
#
# Run by kiosk-usb-gadget.service on a tablet that is not provisioned yet. The
# gadget appears on the station as a tty whose USB device carries:
#   idVendor:idProduct  1d6b:0104  (Linux Foundation, "Multifunction Composite
#                                   Gadget": the id Linux gadgets use)
#   product             "Kiosk enrolment"  (what tells our gadget from others)
#   serialnumber        the tablet's hardware serial (the station compares it
#                       with the serial the tablet signs)
# The station matches these ([station] gadget_vendor, gadget_product,
# gadget_product_name). On the tablet the line is /dev/ttyGS0.
#
# For tests, KIOSK_GADGET_CONFIGFS, KIOSK_GADGET_UDC_DIR and
# KIOSK_GADGET_SERIAL_FILES point the script at other directories and files.
set -eu

CONFIGFS=${KIOSK_GADGET_CONFIGFS:-/sys/kernel/config}
UDC_DIR=${KIOSK_GADGET_UDC_DIR:-/sys/class/udc}
SERIAL_FILES=${KIOSK_GADGET_SERIAL_FILES:-/sys/class/dmi/id/product_serial /proc/device-tree/serial-number}
GADGET="$CONFIGFS/usb_gadget/kiosk"
VENDOR=0x1d6b
PRODUCT=0x0104
PRODUCT_NAME="Kiosk enrolment"

fail() {
    echo "usb-gadget-setup: $*" >&2
    exit 1
}

hardware_serial() {
    for f in $SERIAL_FILES; do
        if [ -r "$f" ]; then
            s=$(tr -d '\000\n' <"$f")
            if [ -n "$s" ]; then
                printf '%s' "$s"
                return 0
            fi
        fi
    done
    return 1
}

start() {
    [ -d "$CONFIGFS/usb_gadget" ] || fail "no $CONFIGFS/usb_gadget: is libcomposite loaded and configfs mounted?"
    serial=$(hardware_serial) || fail "no hardware serial in: $SERIAL_FILES"
    # The serial becomes the certificate's subject: the CA's rule (kiosk.crypto.pki).
    case "$serial" in
        *[!A-Za-z0-9._-]*) fail "hardware serial '$serial' has characters other than A-Z a-z 0-9 . _ -" ;;
    esac
    [ ${#serial} -le 64 ] || fail "hardware serial longer than 64 characters"
    udc=$(ls "$UDC_DIR" 2>/dev/null | head -n 1)
    [ -n "$udc" ] || fail "no USB device controller in $UDC_DIR (is the port in peripheral/OTG mode?)"
    [ -d "$GADGET" ] && stop

    mkdir "$GADGET"
    echo "$VENDOR" >"$GADGET/idVendor"
    echo "$PRODUCT" >"$GADGET/idProduct"
    echo 0x0100 >"$GADGET/bcdDevice"
    echo 0x0200 >"$GADGET/bcdUSB"
    # Miscellaneous device class with an interface association: what hosts expect
    # of a composite CDC ACM device.
    echo 0xEF >"$GADGET/bDeviceClass"
    echo 0x02 >"$GADGET/bDeviceSubClass"
    echo 0x01 >"$GADGET/bDeviceProtocol"
    mkdir -p "$GADGET/strings/0x409"
    printf '%s\n' "$serial" >"$GADGET/strings/0x409/serialnumber"
    echo "Kiosk" >"$GADGET/strings/0x409/manufacturer"
    echo "$PRODUCT_NAME" >"$GADGET/strings/0x409/product"
    mkdir -p "$GADGET/configs/c.1/strings/0x409"
    echo "Enrolment serial line" >"$GADGET/configs/c.1/strings/0x409/configuration"
    echo 100 >"$GADGET/configs/c.1/MaxPower"
    mkdir -p "$GADGET/functions/acm.usb0"
    ln -s "$GADGET/functions/acm.usb0" "$GADGET/configs/c.1/acm.usb0"
    echo "$udc" >"$GADGET/UDC"
    echo "usb-gadget-setup: enrolment gadget for $serial on $udc"
}

stop() {
    [ -d "$GADGET" ] || return 0
    # Unbind first, then remove in the reverse order of creation (configfs rules).
    if [ -n "$(cat "$GADGET/UDC" 2>/dev/null)" ]; then
        echo "" >"$GADGET/UDC"
    fi
    rm -f "$GADGET/configs/c.1/acm.usb0"
    rmdir "$GADGET/configs/c.1/strings/0x409" 2>/dev/null || true
    rmdir "$GADGET/configs/c.1" 2>/dev/null || true
    rmdir "$GADGET/functions/acm.usb0" 2>/dev/null || true
    rmdir "$GADGET/strings/0x409" 2>/dev/null || true
    rmdir "$GADGET" 2>/dev/null || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
