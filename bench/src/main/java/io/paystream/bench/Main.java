package io.paystream.bench; public class Main { public static void main(String[] a){} }
