// In-call controls on the visitor's page (issue 16): mute, camera off and, on a phone with
// two cameras, front or back. Turning a track off sends silence or black, never a frozen
// frame; the page tells the other side in words (a "media" message) where the server relays it.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const mine = { audio: true, video: true, facing: "user" };

  function visitor() {
    return window.kioskVisitor;
  }

  function tracks(kind) {
    const stream = visitor().stream();
    if (!stream) return [];
    return kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks();
  }

  function render() {
    const v = visitor();
    const mute = $("btn-mute");
    mute.textContent = v.t(mine.audio ? "mute" : "unmute");
    mute.setAttribute("aria-pressed", String(!mine.audio));
    const camera = $("btn-camera");
    camera.textContent = v.t(mine.video ? "camera_off" : "camera_on");
    camera.setAttribute("aria-pressed", String(!mine.video));
    $("btn-flip").textContent = v.t("flip_camera");
    document.body.dataset.selfAudio = mine.audio ? "on" : "off";
    document.body.dataset.selfVideo = mine.video ? "on" : "off";
  }

  function tell() {
    const call = visitor().call();
    if (call && visitor().relaysMedia) visitor().send({ type: "media", call_id: call.call_id, audio: mine.audio, video: mine.video });
  }

  function toggle(kind) {
    mine[kind] = !mine[kind];
    for (const track of tracks(kind)) track.enabled = mine[kind];
    render();
    tell();
  }

  // Front or back camera: a new video track replaces the old one on the same connection.
  async function flip() {
    const stream = visitor().stream();
    if (!stream) return;
    const facing = mine.facing === "user" ? "environment" : "user";
    let fresh;
    try {
      fresh = await navigator.mediaDevices.getUserMedia({ video: { facingMode: { exact: facing } } });
    } catch (_) {
      return; // no such camera: stay with the one in use
    }
    const track = fresh.getVideoTracks()[0];
    track.enabled = mine.video;
    const pc = visitor().peer();
    const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === "video");
    if (sender) await sender.replaceTrack(track);
    for (const old of stream.getVideoTracks()) {
      stream.removeTrack(old);
      old.stop();
    }
    stream.addTrack(track);
    mine.facing = facing;
  }

  // A line over the other side's picture, made the first time it is needed.
  function overlay(id) {
    let el = $(id);
    if (!el) {
      el = document.createElement("p");
      el.id = id;
      el.className = id;
      document.querySelector("#screen-call .stage").append(el);
    }
    return el;
  }

  // What the other side said about its own picture and sound.
  function remote(message) {
    const v = visitor();
    const off = overlay("remote-off");
    off.hidden = message.video;
    off.textContent = v.t("remote_camera_off");
    const muted = overlay("remote-muted");
    muted.hidden = message.audio;
    muted.textContent = v.t("remote_muted");
    document.body.dataset.remoteAudio = message.audio ? "on" : "off";
    document.body.dataset.remoteVideo = message.video ? "on" : "off";
  }

  async function offerFlip() {
    try {
      const devices = await navigator.mediaDevices.enumerateDevices();
      const cameras = devices.filter((d) => d.kind === "videoinput");
      $("btn-flip").hidden = cameras.length < 2 || !matchMedia("(pointer: coarse)").matches;
    } catch (_) {
      $("btn-flip").hidden = true;
    }
  }

  window.kioskControls = { remote, render };

  document.addEventListener("DOMContentLoaded", () => {
    $("btn-mute").addEventListener("click", () => toggle("audio"));
    $("btn-camera").addEventListener("click", () => toggle("video"));
    $("btn-flip").addEventListener("click", flip);
    // A new call (or the same one after a reload) starts with sound and picture on.
    new MutationObserver(() => {
      if (document.body.dataset.screen !== "call") return;
      mine.audio = true;
      mine.video = true;
      for (const kind of ["audio", "video"]) for (const track of tracks(kind)) track.enabled = true;
      render();
      tell(); // the other side may still show what a previous connection said
      offerFlip();
    }).observe(document.body, { attributes: true, attributeFilter: ["data-screen"] });
  });
})();
